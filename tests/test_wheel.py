"""The built wheel works on its own: schema.sql and the prompts ship inside the package."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from factory import png_with_text

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="ExifTool is not installed")
def test_wheel_installs_into_a_fresh_virtualenv_and_runs_all(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
    )
    wheel = next(wheels.glob("aimeta-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # Install the wheel itself without its dependencies (no download); the dependencies come
    # from this test run's environment through a plain path entry, which does not pull in
    # the editable source checkout.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    (target / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    images = tmp_path / "Input"
    images.mkdir()
    png_with_text(
        images / "a.png", {"parameters": "a cat\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 1"}
    )
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    where = subprocess.run(
        [str(python), "-c", "import aimeta.db as d; print(d.__file__); print(d.schema_path())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(target)) and where[1].startswith(str(target))
    result = subprocess.run(
        [str(python), "-m", "aimeta", "all", "Input"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "images.db").is_file()
