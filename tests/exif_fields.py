"""The canonical text fields of a fixture file as the real ExifTool reports them (what the
parsers see in an `aimeta all` run with `--reader exiftool`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aimeta.metadata.readers.fields import text_fields


def exiftool_fields(path: Path) -> dict[str, str]:
    """``exiftool -json -G1 -n`` of ``path``, turned into canonical text fields."""
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "--", str(path)], capture_output=True, check=True
    ).stdout
    return text_fields(json.loads(out)[0])
