"""Files per second: the native reader against one ``exiftool -json -r`` call.

Usage:
    python bench/reader_speed.py FOLDER [--repeat 3]

Reads every PNG/JPEG/WebP under FOLDER with ``read_native`` (median of ``--repeat`` passes,
warm cache) and times a single ``exiftool -json -G1 -n -r FOLDER`` over the same folder.
Prints a small markdown table. Not a test; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from aimeta.metadata.readers.native import NativeReadError, can_read_native, read_native


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and can_read_native(path))


def _native_pass(files: list[Path]) -> tuple[float, int]:
    errors = 0
    started = time.perf_counter()
    for path in files:
        try:
            read_native(path)
        except NativeReadError:
            errors += 1
    return time.perf_counter() - started, errors


def _exiftool_seconds(folder: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["exiftool", "-json", "-G1", "-n", "-r", "--", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-exiftool", action="store_true", help="time the native reader only")
    options = parser.parse_args()
    files = _files(options.folder)
    if not files:
        print(f"no PNG, JPEG or WebP files under {options.folder}", file=sys.stderr)
        return 1
    passes = [_native_pass(files) for _ in range(options.repeat)]
    native_seconds = statistics.median(seconds for seconds, _ in passes)
    errors = passes[0][1]
    rows = [(f"read_native (median of {options.repeat} passes)", native_seconds)]
    if not options.no_exiftool:
        rows.append(("exiftool -json -G1 -n -r (one call)", _exiftool_seconds(options.folder)))
    size = sum(path.stat().st_size for path in files)
    print(
        f"{len(files)} files, {size / 1e6:.1f} MB, {errors} read errors; "
        f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}\n"
    )
    print("| reader | seconds | files/s |")
    print("|---|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds:.3f} | {len(files) / seconds:,.0f} |")
    if len(rows) == 2:
        print(f"\nnative is {rows[1][1] / rows[0][1]:.0f}x faster than the single ExifTool call")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
