"""``aimeta doctor``: check what a rating run needs and say what to do about each problem.

``run(settings, transport=None) -> list[Check]``; each Check has a name, a status (``ok``,
``warning``: works with less, ``problem``: rating cannot run), what was found and advice.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from aimeta import db
from aimeta.errors import AimetaError, ModelServerError
from aimeta.rating.client import ModelClient
from aimeta.settings import Settings

Status = Literal["ok", "warning", "problem"]


@dataclass(frozen=True, slots=True)
class Check:
    """One thing checked."""

    name: str
    status: Status
    found: str
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "found": self.found,
            "advice": self.advice,
        }


def run(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> list[Check]:
    """Check ExifTool, darktable-cli, every model server and the database."""
    checks = [_exiftool(settings.exiftool), _darktable(settings.darktable_cli)]
    for url in settings.api_urls:
        checks.extend(_server(url, settings, transport))
    checks.append(_database(Path(settings.db)))
    return checks


def _version(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if done.returncode == 0 and text else None


def _exiftool(executable: str) -> Check:
    if shutil.which(executable) is None:
        return Check(
            "ExifTool",
            "problem",
            f"{executable} not found",
            "install it: `sudo apt-get install libimage-exiftool-perl` (Debian/Ubuntu), "
            "`brew install exiftool` (macOS), https://exiftool.org (Windows); or set "
            "--exiftool / AIMETA_EXIFTOOL",
        )
    version = _version([executable, "-ver"])
    if version is None:
        return Check("ExifTool", "problem", f"{executable} does not run", "reinstall ExifTool")
    return Check("ExifTool", "ok", f"version {version}")


def _darktable(executable: str) -> Check:
    if shutil.which(executable) is None:
        return Check(
            "darktable-cli",
            "warning",
            "not found: images are rendered with Pillow; RAW files use their embedded preview",
            "install darktable (`sudo apt-get install darktable`) so the model sees your edits",
        )
    version = _version([executable, "--version"])
    return Check("darktable-cli", "ok", version or executable)


def _server(url: str, settings: Settings, transport: httpx.BaseTransport | None) -> list[Check]:
    name = f"model server {url}"
    client = ModelClient(
        url, api_key=settings.api_key, timeout=10, max_retries=0, transport=transport
    )
    try:
        models = client.list_models()
    except ModelServerError as exc:
        return [
            Check(
                name,
                "problem",
                exc.message,
                "start the server (LM Studio: Developer tab > Start Server) or pass --api-url",
            )
        ]
    finally:
        client.close()
    if not models:
        return [Check(name, "problem", "reachable, but no model is loaded", "load a vision model")]
    wanted = settings.model or models[0].id
    checks = [Check(name, "ok", f"reachable; models: {', '.join(m.id for m in models[:8])}")]
    if settings.model and settings.model not in {m.id for m in models}:
        checks.append(
            Check(
                f"model {wanted}",
                "warning",
                "not listed by the server",
                "load that model in the server, or pass one of the listed names to --model",
            )
        )
    checks.append(_vision(url, wanted, settings, transport))
    return checks


def _vision(
    url: str, model: str, settings: Settings, transport: httpx.BaseTransport | None
) -> Check:
    """LM Studio says at /api/v0/models whether a model reads images (type "vlm")."""
    root = url.rstrip("/").removesuffix("/v1")
    name = f"vision support of {model}"
    try:
        with httpx.Client(timeout=5, transport=transport) as http:
            response = http.get(f"{root}/api/v0/models")
        entries = response.json().get("data", []) if response.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        entries = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("id") == model and entry.get("type"):
            if entry["type"] == "vlm":
                return Check(name, "ok", "the server reports a vision model")
            return Check(
                name,
                "problem",
                f"the server reports type {entry['type']!r}, not a vision model",
                "load a vision model (e.g. Qwen2.5-VL, Gemma 3, LLaVA) or pass --model",
            )
    del settings
    return Check(name, "warning", "the server does not say", "make sure the model reads images")


def _database(path: Path) -> Check:
    if not path.exists():
        return Check("database", "ok", f"{path} does not exist yet; a run creates it")
    try:
        conn = db.open_existing(path, readonly=True)
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            ratings = conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0]
        finally:
            conn.close()
    except (AimetaError, sqlite3.DatabaseError) as exc:
        reason = exc.message if isinstance(exc, AimetaError) else str(exc)
        return Check("database", "problem", f"{path}: {reason}", "move it aside and re-run")
    if verdict != "ok":
        return Check("database", "problem", f"{path}: {verdict}", "restore it from a backup")
    return Check("database", "ok", f"{path}: {ratings} rating(s)")
