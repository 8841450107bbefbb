"""The library page in a real headless Chromium: search a token, open an image, rate it with
the keyboard, move on, reject; the sidecars say so (read back with ExifTool)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _serving

from aimeta.settings import Settings
from library_fixture import infotext, make_library


def sidecar_rating(image: Path) -> str:
    done = subprocess.run(
        ["exiftool", "-s3", "-XMP-xmp:Rating", str(image.with_name(image.name + ".xmp"))],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


@pytest.mark.browser
def test_the_library_searches_opens_and_rates_from_the_keyboard(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    made = make_library(tmp_path, 24)
    # The matches by a plain reading of what was written into the files, sorted newest first
    # (the files were written in index order, so the newest is the last written).
    matching = [path for index, path in enumerate(made.images) if "(red hair:" in infotext(index)]
    matching.sort(key=lambda path: path.stat().st_mtime_ns, reverse=True)
    assert len(matching) == 2
    shots = Path(os.environ.get("SCREENSHOT_DIR", str(tmp_path)))
    shots.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(
        Settings(), db=made.database, host="127.0.0.1", port=_free_port()
    )
    with _serving(settings) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "library")
            page.wait_for_function("() => document.querySelectorAll('.cell').length === 24")
            page.wait_for_selector("#facets h2")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.cell img')].every(i => i.complete)"
            )
            page.screenshot(path=str(shots / "library-grid-all.png"))

            page.fill("#q", "red hair")
            page.press("#q", "Enter")
            page.wait_for_function("() => document.querySelectorAll('.cell').length === 2")
            shown = page.eval_on_selector_all(".cell", "cells => cells.map(c => c.title)")
            assert shown == [str(path) for path in matching]
            assert "2 images match" in (page.text_content("#count") or "")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.cell img')].every(i => i.naturalWidth > 0)"
            )
            page.screenshot(path=str(shots / "library-grid.png"))

            page.click(".cell >> nth=0")
            page.wait_for_selector("#info-body .path")
            assert page.text_content("#info-body .path") == str(matching[0])
            page.wait_for_function("() => document.getElementById('big').naturalWidth > 0")
            page.keyboard.press("4")
            page.wait_for_selector("#info-body .star.on >> nth=3")
            assert sidecar_rating(matching[0]) == "4"
            assert page.locator("#info-body .token.up").count() == 1  # (red hair:1.2)
            page.screenshot(path=str(shots / "library-detail.png"))

            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "path => document.querySelector('#info-body .path')?.textContent === path",
                arg=str(matching[1]),
            )
            page.keyboard.press("x")
            page.wait_for_selector("#info-body .flag.reject")
            assert sidecar_rating(matching[1]) == "-1"
            page.keyboard.press("Escape")
            page.wait_for_selector(".cell.rejected")
            assert errors == []
        finally:
            browser.close()
    assert (shots / "library-detail.png").stat().st_size > 10_000
