"""Settings, resolved once per command: CLI flag > ``AIMETA_*`` environment > aimeta.toml > default.

``aimeta.toml`` is looked for in the working directory (or at ``AIMETA_CONFIG``). Keys are the
field names below; environment variables are ``AIMETA_`` + the upper-case field name. List
values (``api_urls``) are comma-separated in the environment. Each setting is declared once,
with its default and a line of help that the command line shows with its flag.

A name that is no setting (``AIMETA_API_URLZ``, a misspelt toml key) is not silently ignored:
:func:`name_warnings` says which real setting was probably meant. ``AIMETA_API_URL`` and the
toml key ``api_url`` are accepted for ``api_urls`` (the flag is ``--api-url``); when both
spellings are set, the plural wins and a warning says so.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from aimeta.errors import UsageError

DEFAULT_API_URL = "http://localhost:1234/v1"
ENV_PREFIX = "AIMETA_"
# AIMETA_* variables aimeta reads that are not settings: the config file's path, and the real
# sample files the optional tests read.
NOT_SETTINGS = frozenset({"AIMETA_CONFIG", "AIMETA_SAMPLES"})
# Other accepted spellings of a setting's name (environment and toml alike).
ALIASES = {"api_url": "api_urls"}
# The raw metadata file that dump writes and ingest reads, inside out_dir.
RAW_JSONL = "exif_raw.jsonl"


def setting(default: Any, help: str) -> Any:
    """A dataclass field with its one line of ``--help``."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every tunable of aimeta with its built-in default and help."""

    out_dir: Path = setting(Path("out"), "Folder for exif_raw.jsonl, images.db, records.*")
    db: Path = setting(Path("out/images.db"), "The SQLite database.")
    exiftool: str = setting("exiftool", "Path of the ExifTool executable.")
    reader: str = setting(
        "auto",
        "auto: the built-in reader for PNG/JPEG/WebP and ExifTool for other types; "
        "exiftool: ExifTool for every file; native: the built-in reader wherever it applies.",
    )
    batch_size: int = setting(500, "Images stored per database transaction.")
    jobs: int = setting(0, "Worker processes that read and parse (0: one per core; 1: none).")
    # rating
    api_urls: tuple[str, ...] = setting(
        (DEFAULT_API_URL,), "OpenAI-compatible server; repeat to spread the work."
    )
    api_key: str = setting("", "API key sent to the model server, if it needs one.")
    model: str = setting("", "Model tag; default: the one loaded on the server.")
    temperature: float = setting(0.1, "Sampling temperature.")
    size: int = setting(896, "Longest side of the image sent, in pixels.")
    quality: int = setting(90, "JPEG quality of the image sent.")
    workers: int = setting(2, "Model requests at once.")
    converter: str = setting("auto", "auto|darktable|pillow.")
    darktable_cli: str = setting("darktable-cli", "Path of the darktable-cli executable.")
    request_timeout: float = setting(300.0, "Seconds to wait for one model answer.")
    render_timeout: float = setting(120.0, "Seconds to wait for darktable-cli per image.")
    max_retries: int = setting(4, "Retries of a failed model request.")
    retry_backoff: float = setting(1.0, "Seconds before the first retry; doubles each time.")
    max_tokens: int = setting(2048, "Token limit of one answer.")
    max_keywords: int = setting(15, "Keywords kept per image.")
    sidecar: str = setting(
        "darktable", "Style of new sidecars: darktable (IMG.CR2.xmp) or adobe (IMG.xmp)."
    )
    prompts_dir: Path = setting(Path("prompts"), "Folder of prompt files the web page edits.")
    system_prompt: Path | None = setting(None, "File with the system prompt.")
    user_prompt: Path | None = setting(None, "File with the user prompt.")
    # resolve
    civitai_base_url: str = setting("https://civitai.com/api/v1", "Base URL of the Civitai API.")
    civitai_token: str = setting("", "Civitai API token for --online lookups.")
    civitai_rate: float = setting(2.0, "Civitai requests per second at most.")
    # web
    host: str = setting("127.0.0.1", "Address to listen on.")
    port: int = setting(5000, "Port to listen on.")

    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def raw_jsonl(self) -> Path:
        """The raw metadata file in ``out_dir`` (written by dump, read by ingest)."""
        return self.out_dir / RAW_JSONL


def names() -> tuple[str, ...]:
    """The names of every setting, in declaration order."""
    return tuple(spec.name for spec in dataclasses.fields(Settings) if spec.name != "extra")


def _spec(name: str) -> dataclasses.Field[Any]:
    for spec in dataclasses.fields(Settings):
        if spec.name == name and name != "extra":
            return spec
    raise KeyError(name)


def help_text(name: str) -> str:
    """The one line of help declared for setting ``name``."""
    return str(_spec(name).metadata["help"])


def default_text(name: str) -> str:
    """The built-in default of setting ``name`` as ``--help`` shows it."""
    value = _spec(name).default
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def _convert(name: str, raw: Any, hint: Any) -> Any:
    text_hint = str(hint)
    try:
        if text_hint.startswith("tuple"):
            if isinstance(raw, str):
                return tuple(part.strip() for part in raw.split(",") if part.strip())
            return tuple(str(item) for item in raw)
        if "Path" in text_hint:
            return None if raw in ("", None) else Path(str(raw)).expanduser()
        # get_type_hints gives classes (str(int) is "<class 'int'>"), so compare both.
        if hint is int or text_hint == "int":
            return int(raw)
        if hint is float or text_hint == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"setting {name!r}: cannot use {raw!r} ({exc})") from exc


def load_toml(path: Path | None = None) -> dict[str, Any]:
    """Read aimeta.toml (or ``path``); a missing file is an empty mapping."""
    if path is None:
        path = Path(os.environ.get("AIMETA_CONFIG", "aimeta.toml"))
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    # Accept both a flat file and one with an [aimeta] table.
    section = data.get("aimeta", data)
    return dict(section) if isinstance(section, dict) else {}


def _spellings(name: str) -> tuple[str, ...]:
    """Setting ``name`` and its aliases, in order of precedence."""
    return (name, *(alias for alias, real in ALIASES.items() if real == name))


def _first(found: Mapping[str, Any], keys: Iterable[str]) -> Any:
    return next((found[key] for key in keys if key in found), None)


def resolve(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Build Settings from CLI ``flags`` (``None`` values mean "not given"), the environment
    and aimeta.toml, in that order of precedence."""
    environ = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    config = load_toml(config_path)
    values: dict[str, Any] = {}
    for name in names():
        given = (flags or {}).get(name)
        from_environment = _first(environ, (f"{ENV_PREFIX}{x.upper()}" for x in _spellings(name)))
        from_config = _first(config, _spellings(name))
        if given is not None and given != ():
            values[name] = _convert(name, given, hints[name])
        elif from_environment is not None:
            values[name] = _convert(name, from_environment, hints[name])
        elif from_config is not None:
            values[name] = _convert(name, from_config, hints[name])
    # The database follows --out-dir unless it was set on its own.
    if "db" not in values and "out_dir" in values:
        values["db"] = Path(values["out_dir"]) / "images.db"
    return Settings(**values)


def name_warnings(
    *, environ: Mapping[str, str] | None = None, config_path: Path | None = None
) -> list[str]:
    """One line for each ``AIMETA_*`` variable and aimeta.toml key that names no setting
    (with the closest real name), and for a setting given under two spellings.

    Never raises: a config file that cannot be read is reported when settings are resolved.
    """
    environ = os.environ if environ is None else environ
    known = set(names()) | set(ALIASES)
    lines: list[str] = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in NOT_SETTINGS:
            continue
        name = variable.removeprefix(ENV_PREFIX)
        if name.lower() not in known or not name.isupper():
            lines.append(_unknown(name, prefix=ENV_PREFIX, upper=True))
    where = config_path or Path(environ.get("AIMETA_CONFIG", "aimeta.toml"))
    try:
        config = load_toml(where)
    except UsageError:
        config = {}
    lines.extend(f"{where}: {_unknown(key)}" for key in sorted(config) if key not in known)
    for alias, name in ALIASES.items():
        for spelled, chosen, found in (
            (f"{ENV_PREFIX}{alias.upper()}", f"{ENV_PREFIX}{name.upper()}", environ),
            (alias, name, config),
        ):
            if spelled in found and chosen in found:
                lines.append(f"both {spelled} and {chosen} are set; using {chosen}")
    return lines


def _unknown(name: str, *, prefix: str = "", upper: bool = False) -> str:
    """``name`` is no setting; the closest setting name (not an alias), if one is close."""
    close = difflib.get_close_matches(name.lower(), names(), n=1)
    hint = ""
    if close:
        suggestion = close[0].upper() if upper else close[0]
        hint = f" (did you mean {prefix}{suggestion}?)"
    return f"{prefix}{name} is not an aimeta setting{hint}"
