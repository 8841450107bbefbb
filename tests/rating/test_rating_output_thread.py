"""The rate pipeline's output thread: writes never hold back requests, events stay in the
calling thread, ExifTool starts late but is looked up early, output errors still end the run."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aimeta import events
from aimeta.errors import ExifToolMissing, OutputError
from aimeta.pipelines import rate
from aimeta.rating.sidecar import SidecarWriter
from aimeta.settings import Settings
from openai_server import serve

# How long a test waits for a condition before it calls it failed (never a timing measure).
PATIENCE_S = 20.0


def _rows(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        count = int(conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0])
    conn.close()
    return count


def test_a_slow_write_does_not_hold_back_the_next_request(
    folder_of: Callable[[int], Path],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One model slot, three images: the first image's sidecar write waits until the server
    has seen all three requests, which only happens when writing runs beside the requests."""
    folder = folder_of(3)
    original = SidecarWriter.write
    waited: list[bool] = []

    with serve() as server:

        def slow_write(self: SidecarWriter, image: Path, *args: Any, **kwargs: Any) -> Path:
            if image.parent == folder and not waited:
                deadline = time.monotonic() + PATIENCE_S
                while server.request_count < 3 and time.monotonic() < deadline:
                    time.sleep(0.01)
                waited.append(server.request_count >= 3)
            return original(self, image, *args, **kwargs)

        monkeypatch.setattr(SidecarWriter, "write", slow_write)
        result = rate.run(make_settings(server.base_url, workers=1), rate.RateOptions(folder))
    assert waited == [True], "the third request waited for the first image's sidecar"
    assert result.rated == 3 and result.csv_rows == 3
    assert len(list(folder.glob("*.xmp"))) == 3


def test_events_come_from_the_calling_thread(
    folder_of: Callable[[int], Path], make_settings: Callable[..., Settings]
) -> None:
    folder = folder_of(6)
    threads: set[str] = set()
    results: list[events.ItemResult] = []

    def on_event(event: events.Event) -> None:
        threads.add(threading.current_thread().name)
        if isinstance(event, events.ItemResult):
            results.append(event)

    with serve(latency=0.05) as server:
        settings = make_settings(server.base_url, workers=3)
        result = rate.run(settings, rate.RateOptions(folder), on_event=on_event)
    assert threads == {threading.current_thread().name}
    assert result.rated == 6 and len(results) == 6
    # An image is reported once its outputs are written.
    for event in results:
        assert event.data["sidecar"] and Path(event.data["sidecar"]).is_file()


def test_missing_exiftool_stops_the_run_before_anything_is_sent(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    with serve() as server:
        settings = make_settings(server.base_url, exiftool="/nonexistent/exiftool")
        with pytest.raises(ExifToolMissing):
            rate.run(settings, rate.RateOptions(photos))
        assert server.request_count == 0
        # Without sidecars ExifTool is not needed.
        result = rate.run(settings, rate.RateOptions(photos, xmp=False))
    assert result.rated == 4


def test_an_output_error_in_the_output_thread_ends_the_run(
    folder_of: Callable[[int], Path], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The CSV cannot be written (its folder is a file): the first flush (10 rows) raises
    OutputError from ``run``; the database, written first, holds the answers that came."""
    folder = folder_of(12)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with serve() as server:
        settings = make_settings(server.base_url, workers=2)
        options = rate.RateOptions(folder, xmp=False, csv_path=blocker / "ratings.csv")
        with pytest.raises(OutputError, match="cannot write"):
            rate.run(settings, options)
    assert 10 <= _rows(settings.db) <= server.request_count
