"""Settings, resolved once per command: CLI flag > ``AIMETA_*`` environment > aimeta.toml > default.

``aimeta.toml`` is looked for in the working directory (or at ``AIMETA_CONFIG``). Keys are the
field names below; environment variables are ``AIMETA_`` + the upper-case field name. List
values (``api_urls``) are comma-separated in the environment.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from aimeta.errors import UsageError

DEFAULT_API_URL = "http://localhost:1234/v1"


@dataclass(frozen=True)
class Settings:
    """Every tunable of aimeta with its built-in default."""

    out_dir: Path = Path("out")
    db: Path = Path("out/images.db")
    exiftool: str = "exiftool"
    reader: str = "auto"
    batch_size: int = 500
    jobs: int = 0  # worker processes for reading and parsing; 0: one per core
    # rating
    api_urls: tuple[str, ...] = (DEFAULT_API_URL,)
    api_key: str = ""
    model: str = ""
    temperature: float = 0.1
    size: int = 896
    quality: int = 90
    workers: int = 2
    converter: str = "auto"
    darktable_cli: str = "darktable-cli"
    request_timeout: float = 300.0
    render_timeout: float = 120.0
    max_retries: int = 4
    retry_backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_tokens: int = 2048
    max_keywords: int = 15
    sidecar: str = "darktable"
    prompts_dir: Path = Path("prompts")
    system_prompt: Path | None = None
    user_prompt: Path | None = None
    # resolve
    civitai_base_url: str = "https://civitai.com/api/v1"
    civitai_token: str = ""
    civitai_rate: float = 2.0
    # web
    host: str = "127.0.0.1"
    port: int = 5000

    extra: Mapping[str, Any] = field(default_factory=dict)


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
    for spec in dataclasses.fields(Settings):
        name = spec.name
        if name == "extra":
            continue
        given = (flags or {}).get(name)
        if given is not None and given != ():
            values[name] = _convert(name, given, hints[name])
        elif f"AIMETA_{name.upper()}" in environ:
            values[name] = _convert(name, environ[f"AIMETA_{name.upper()}"], hints[name])
        elif name in config:
            values[name] = _convert(name, config[name], hints[name])
    # The database follows --out-dir unless it was set on its own.
    if "db" not in values and "out_dir" in values:
        values["db"] = Path(values["out_dir"]) / "images.db"
    if "civitai_token" not in values and "AIMETA_CIVITAI_TOKEN" in environ:
        values["civitai_token"] = environ["AIMETA_CIVITAI_TOKEN"]
    return Settings(**values)
