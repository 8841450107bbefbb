"""End to end in a real headless Chromium: open the page, rate a folder, read the results."""

from __future__ import annotations

import csv
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from aimeta.settings import Settings
from aimeta.web.app import create_app
from openai_server import serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    """The app on uvicorn in a background thread; yields its URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.browser
def test_the_page_rates_a_folder_in_chromium(
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    make_photos: Callable[[Path, int], list[Path]],
) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's Chromium is not installed at /usr/bin/chromium (apt install chromium)"
        )
    from playwright.sync_api import sync_playwright

    photos = tmp_path / "photos"
    make_photos(photos, 4)
    screenshot = tmp_path / "aimeta-web-end-of-job.png"
    with serve(latency=0.3, slots=2) as model_server:
        settings = make_settings(model_server.base_url, port=_free_port(), workers=2)
        with _serving(settings) as url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page(
                    accept_downloads=True, viewport={"width": 1280, "height": 900}
                )
                console_errors: list[str] = []
                page.on(
                    "console",
                    lambda message: (
                        console_errors.append(message.text) if message.type == "error" else None
                    ),
                )
                page.goto(url)
                page.wait_for_function(
                    "() => document.getElementById('system-prompt').value.length > 0"
                )
                page.fill("#folder", str(photos))
                page.uncheck("input[name=xmp]")
                page.click("#start")
                page.wait_for_function(
                    "() => document.getElementById('progress').value === 100", timeout=30_000
                )
                page.wait_for_selector("#histogram-box:not([hidden])", timeout=10_000)
                page.wait_for_selector("#csv-link:not([hidden])", timeout=10_000)
                page.wait_for_function(
                    "() => document.getElementById('now-img').naturalWidth > 0", timeout=10_000
                )

                assert page.text_content("#state") == "finished"
                progress_text = page.text_content("#progress-text") or ""
                assert "4 / 4 (100 %)" in progress_text and "4 rated" in progress_text
                rows = page.locator("#results-body tr")
                assert rows.count() == 4
                names = sorted(rows.nth(i).locator("td").first.inner_text() for i in range(4))
                assert names == [f"photo0{i}.jpg" for i in range(4)]
                assert page.locator("#now-scores li").count() == 6
                assert page.locator("#histogram li").count() == 5
                histogram_total = sum(
                    int(page.locator("#histogram li .num").nth(i).inner_text()) for i in range(5)
                )
                assert histogram_total == 4
                assert "Job 1 finished: 4 rated" in (page.text_content("#log") or "")

                # Sorting by stars twice gives opposite orders.
                page.click("#results-head th:nth-child(2) button")
                first = _stars_column(page)
                page.click("#results-head th:nth-child(2) button")
                second = _stars_column(page)
                assert first == sorted(first, reverse=True) and second == sorted(second)

                with page.expect_download() as download_info:
                    page.click("#csv-link")
                downloaded = Path(download_info.value.path())
                with downloaded.open(newline="", encoding="utf-8") as handle:
                    csv_rows = list(csv.DictReader(handle))
                assert sorted(Path(row["path"]).name for row in csv_rows) == names
                assert sorted(int(row["overall"]) for row in csv_rows) == sorted(first)

                page.screenshot(path=str(screenshot), full_page=True)
                assert console_errors == []
            finally:
                browser.close()
    assert screenshot.stat().st_size > 10_000
    assert model_server.request_count == 4


def _stars_column(page: object) -> list[int]:
    cells = page.locator("#results-body tr td:nth-child(2)")  # type: ignore[attr-defined]
    return [(cells.nth(i).inner_text() or "").count("★") for i in range(cells.count())]
