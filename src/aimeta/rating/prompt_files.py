"""Where the rating prompts come from, and where edited prompts are saved.

Order: an explicit file (``--system-prompt`` / ``--user-prompt``) > ``system.txt`` /
``user.txt`` in the settings' ``prompts_dir`` > the defaults shipped in this package.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aimeta.errors import InputError, OutputError
from aimeta.settings import Settings

SYSTEM_FILE = "system.txt"
USER_FILE = "user.txt"
MAX_PROMPT_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class Prompts:
    """The system prompt and the user prompt template (before ``{criteria}`` is filled)."""

    system: str
    user: str

    @property
    def prompt_hash(self) -> str:
        """A short hash naming this pair of prompts (stored with every rating)."""
        digest = hashlib.sha256(f"{self.system}\0{self.user}".encode()).hexdigest()
        return digest[:16]


def default_prompts() -> Prompts:
    """The prompts shipped with aimeta."""
    folder = resources.files("aimeta.rating").joinpath("prompts")
    return Prompts(
        system=folder.joinpath(SYSTEM_FILE).read_text(encoding="utf-8"),
        user=folder.joinpath(USER_FILE).read_text(encoding="utf-8"),
    )


def load(settings: Settings) -> Prompts:
    """The prompts a rating run uses under ``settings``; raise InputError for an unreadable file."""
    defaults = default_prompts()
    return Prompts(
        system=_pick(settings.system_prompt, settings.prompts_dir / SYSTEM_FILE, defaults.system),
        user=_pick(settings.user_prompt, settings.prompts_dir / USER_FILE, defaults.user),
    )


def save(settings: Settings, prompts: Prompts) -> Path:
    """Write both prompts into the settings' ``prompts_dir`` (atomically); return the folder."""
    folder = settings.prompts_dir
    for text in (prompts.system, prompts.user):
        if not text.strip() or len(text) > MAX_PROMPT_CHARS:
            raise OutputError(f"a prompt must hold 1 to {MAX_PROMPT_CHARS:,} characters")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in ((SYSTEM_FILE, prompts.system), (USER_FILE, prompts.user)):
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, folder / name)
    except OSError as exc:
        raise OutputError(f"cannot save the prompts in {folder}: {exc.strerror}") from exc
    return folder


def _pick(explicit: Path | None, in_folder: Path, default: str) -> str:
    if explicit is not None:
        return _read(explicit)
    if in_folder.is_file():
        return _read(in_folder)
    return default


def _read(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the prompt file {path}: {exc}") from exc
    if not text.strip():
        raise InputError(f"the prompt file {path} is empty")
    return text
