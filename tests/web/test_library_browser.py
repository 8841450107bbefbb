"""The library page in a real headless Chromium: search a token, open an image, rate it with
the keyboard, move on, reject; the sidecars say so (read back with ExifTool)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _serving

from aimeta.pipelines import all as all_pipeline
from aimeta.settings import Settings
from library_fixture import Made, infotext, make_library, picture
from openai_server import ServerState, serve


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


def wait_for_ratings(database: Path, model: str, count: int) -> set[str]:
    """The paths rated by ``model`` once there are ``count`` of them (or after 20 s)."""
    deadline = time.monotonic() + 20
    rated: set[str] = set()
    while time.monotonic() < deadline and len(rated) < count:
        time.sleep(0.1)
        with sqlite3.connect(database) as conn:
            query = "SELECT path FROM ratings WHERE model = ?"
            rated = {path for (path,) in conn.execute(query, (model,))}
    return rated


def cull(database: Path, decisions: dict[Path, str]) -> None:
    """cull_decisions rows as `aimeta cull` writes them: one group, its pick ranked first."""
    with sqlite3.connect(database) as conn:
        ids = {
            path: conn.execute("SELECT id FROM images WHERE path = ?", (str(path),)).fetchone()[0]
            for path in decisions
        }
        group = min(ids.values())
        conn.executemany(
            "INSERT INTO cull_decisions (image_id, group_id, rank, stars, decision, model,"
            " decided_at) VALUES (?, ?, ?, ?, ?, 'tester', '2026-01-01T00:00:00Z')",
            [
                (ids[path], group, rank, 5 - rank, decision)
                for rank, (path, decision) in enumerate(decisions.items(), 1)
            ],
        )


@pytest.mark.browser
def test_new_images_appear_culls_show_and_a_selection_exports(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")

    made = make_library(tmp_path, 6)
    cull(made.database, {made.images[4]: "pick", made.images[5]: "reject"})
    shots = Path(os.environ.get("SCREENSHOT_DIR", str(tmp_path)))
    shots.mkdir(parents=True, exist_ok=True)
    with serve() as model:
        settings = dataclasses.replace(
            Settings(), db=made.database, host="127.0.0.1", port=_free_port(),
            api_urls=(model.base_url,), converter="pillow", size=128,
        )  # fmt: skip
        with _serving(settings) as url:
            check_news_cull_and_selection(url, made, model, shots)


def check_news_cull_and_selection(url: str, made: Made, model: ServerState, shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 800},
                permissions=["clipboard-read", "clipboard-write"],
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "library")
            page.wait_for_function("() => document.querySelectorAll('.cell').length === 6")
            culled = page.eval_on_selector_all(
                ".cell .cull", "badges => badges.map(b => [b.closest('.cell').title, b.className])"
            )
            assert sorted(culled) == [
                [str(made.images[4]), "cull pick"],
                [str(made.images[5]), "cull reject"],
            ]
            assert page.is_hidden("#news")

            # Two images land while the page is open, stored by aimeta's own ingest path.
            added = [picture(made.folder / f"new{index}.png", 100 + index) for index in (0, 1)]
            all_pipeline.run(
                [made.folder],
                Settings(out_dir=made.database.parent, db=made.database, jobs=1),
            )
            page.wait_for_selector("#news:not([hidden])", timeout=15_000)
            assert page.text_content("#show-news") == "2 new images — show"
            assert page.locator(".cell").count() == 6  # shown only when asked
            page.screenshot(path=str(shots / "library-news.png"))
            page.click("#show-news")
            page.wait_for_function("() => document.querySelectorAll('.cell').length === 8")
            titles = page.eval_on_selector_all(".cell", "cells => cells.map(c => c.title)")
            newest_first = sorted(added, key=lambda path: path.stat().st_mtime_ns, reverse=True)
            assert titles[:2] == [str(path) for path in newest_first]
            assert page.is_hidden("#news")

            # Ctrl-click one, Shift-click to a third: three selected, in grid order.
            page.click(".cell >> nth=1", modifiers=["Control"])
            page.click(".cell >> nth=3", modifiers=["Shift"])
            assert page.text_content("#selected") == "3 selected"
            assert page.locator(".cell.selected").count() == 3
            assert page.is_hidden("#detail")
            page.click("#copy-paths")
            page.wait_for_function(
                "() => document.getElementById('toast').textContent.includes('paths')"
            )
            copied = page.evaluate("navigator.clipboard.readText()")
            assert copied.splitlines() == sorted(titles[1:4])
            with page.expect_download() as download:
                page.click("#export-prompts")
            prompts = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
            by_path = {str(path): index for index, path in enumerate(made.images)}
            by_path |= {str(path): 100 + index for index, path in enumerate(added)}
            expected = {infotext(by_path[title]).split("\n")[0] for title in titles[1:4]}
            assert sorted(prompts) == sorted(expected)
            page.screenshot(path=str(shots / "library-selection.png"))
            page.click("#rate-selection")
            page.wait_for_selector("#toast:has-text('Rating 3 images')")
            assert wait_for_ratings(made.database, model.model_id, 3) == set(titles[1:4])

            page.click("#select-all")
            assert page.text_content("#selected") == "8 selected"
            with page.expect_download() as download:
                page.click("#export-tokens")
            tokens = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
            assert tokens[:2] == ["masterpiece", "portrait"]  # in all 8 images, then a-z
            assert len(tokens) == len(set(tokens)) > 8
            page.keyboard.press("Escape")
            assert page.locator(".cell.selected").count() == 0
            assert page.is_hidden("#actions")
            assert errors == []
        finally:
            browser.close()
