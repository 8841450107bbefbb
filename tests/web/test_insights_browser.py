"""The library's Insights view in a real headless Chromium: a chart per dimension with one bar
per value the API returns, keyboard focus on the bars, and a click that filters the grid to
the bar's images (the grid's count equals the bar's)."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _serving

from aimeta.settings import Settings
from library_fixture import make_library


def rate_everything(database: Path) -> None:
    """An AI rating for every image (1-5 by index), as `aimeta rate` stores them."""
    with sqlite3.connect(database) as conn:
        paths = [row[0] for row in conn.execute("SELECT path FROM images ORDER BY path")]
        conn.executemany(
            "INSERT OR REPLACE INTO ratings (path, model, overall, scores_json, keywords_json,"
            " rated_at) VALUES (?, 'tester', ?, '{}', '[]', '2024-06-01T00:00:00Z')",
            [(path, 1 + (index * 7) % 5) for index, path in enumerate(paths)],
        )


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 420])
def test_insights_charts_render_and_a_bar_filters_the_grid(tmp_path: Path, width: int) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    made = make_library(tmp_path, 36)
    rate_everything(made.database)
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
            page = browser.new_page(viewport={"width": width, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(url + "library")
            page.wait_for_selector("#count:has-text('36 images')")
            page.click("#tab-insights")
            page.fill("#insight-min", "3")
            page.dispatch_event("#insight-min", "change")
            page.wait_for_selector("#insight-status:has-text('Baseline: 36 images')")
            page.wait_for_function(
                "() => document.querySelectorAll('.chart .chart-note').length === 10 &&"
                " [...document.querySelectorAll('.chart-note')].every("
                "   n => !n.textContent.startsWith('Loading'))"
            )
            assert "not causes" in (page.text_content(".caveat") or "")
            # One bar per value the API counted, in each chart.
            for dimension in ("lora", "checkpoint", "sampler", "token"):
                answer = json.loads(
                    page.evaluate(
                        "d => fetch('/api/insights?min_images=3&by=' + encodeURIComponent(d))"
                        ".then(r => r.text())",
                        dimension,
                    )
                )
                selector = f".chart[data-dimension='{dimension}'] g.row"
                bars = page.eval_on_selector_all(
                    selector, "rows => rows.map(r => JSON.parse(r.dataset.filter))"
                )
                assert bars == [row["filter"] for row in answer["rows"]], dimension
                assert len(bars) == answer["values"][dimension] > 0
            checkpoint_bars = page.locator(".chart[data-dimension='checkpoint'] g.row")
            assert checkpoint_bars.count() == 2  # dreamshaper_8 and juggernautXL
            page.locator(".chart").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / f"library-insights-{width}.png"))

            # A long token label is cut, its full text in the bar's title.
            labels = page.eval_on_selector_all(
                ".chart[data-dimension='token'] g.row",
                "rows => rows.map(r => [r.querySelector('.label').textContent,"
                " r.querySelector('title').textContent])",
            )
            assert all(title.startswith(label.rstrip("…")) for label, title in labels)

            # The keyboard reaches a bar; Enter shows its images in the grid.
            lora = page.locator(".chart[data-dimension='lora'] g.row").first
            expected = int(lora.get_attribute("data-images") or 0)
            lora.focus()
            page.keyboard.press("ArrowDown")
            second = page.locator(".chart[data-dimension='lora'] g.row").nth(1)
            assert page.evaluate("() => document.activeElement.dataset.images") == (
                second.get_attribute("data-images")
            )
            page.keyboard.press("ArrowUp")
            page.keyboard.press("Enter")
            page.wait_for_selector("#grid-view:not([hidden])")
            page.wait_for_function(
                "n => document.getElementById('count').textContent === n + ' images match'",
                arg=expected,
            )
            assert 0 < page.locator(".cell").count() <= expected
            chips = page.eval_on_selector_all(".chip", "chips => chips.map(c => c.textContent)")
            assert any(chip.startswith("LoRA = ") for chip in chips)
            assert "rated: AI rating ✕" in chips

            # A click with the mouse on a bar of another chart: that bar's images, with both
            # filters (the chart follows the grid's filters).
            page.click("#tab-insights")
            page.wait_for_function(
                "() => document.querySelectorAll('.chart[data-dimension=\"sampler\"] g.row')"
                ".length > 0"
            )
            sampler = page.locator(".chart[data-dimension='sampler'] g.row").first
            count = int(sampler.get_attribute("data-images") or 0)
            assert count <= expected
            sampler.click()
            page.wait_for_function(
                "n => document.getElementById('count').textContent === n + ' images match'",
                arg=count,
            )
            assert page.locator(".cell").count() == count
            page.screenshot(path=str(shots / f"library-insights-grid-{width}.png"))
            assert errors == []
        finally:
            browser.close()
