"""The whole rate pipeline against a real local OpenAI-compatible server, one fault at a time."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aimeta import events
from aimeta.errors import ModelServerError, UsageError
from aimeta.pipelines import rate
from aimeta.settings import Settings
from openai_server import closed_port_url, serve

# mode, server options, settings changes, images rated (of 4), failure reason pattern
CASES: list[tuple[str, dict[str, Any], dict[str, Any], int, str | None]] = [
    ("ok", {}, {}, 4, None),
    ("error_500", {"fail_times": 1}, {}, 4, None),
    ("fenced", {}, {}, 4, None),
    ("think", {}, {}, 4, None),
    ("key_value", {}, {}, 4, None),
    ("malformed_json", {}, {}, 0, r"holds no rating"),
    # HTTP 200 whose body is not JSON: retried like a 5xx, recorded when every try fails
    ("bad_body", {}, {}, 0, r"HTTP 200 with a body that is not JSON: '<html>.*gave up after 3"),
    ("html_200", {"fail_times": 1}, {}, 4, None),
    ("truncated_200", {"fail_times": 2}, {}, 4, None),
    ("missing_fields", {}, {}, 0, r"has no lighting"),
    ("out_of_range", {}, {}, 0, r"composition is 14, outside 1-10"),
    ("length", {}, {}, 0, r"raise max_tokens"),
    # every request times out and is not retried: a per-image error, the run goes on
    (
        "timeout",
        {"fail_times": 99, "timeout_sleep": 1.0},
        {"request_timeout": 0.3, "max_retries": 0},
        0,
        r"no answer within 0.3 s",
    ),
    # the first request times out, its retry succeeds
    (
        "timeout",
        {"fail_times": 1, "timeout_sleep": 1.0},
        {"request_timeout": 0.3, "max_retries": 1},
        4,
        None,
    ),
]


def _run(settings: Settings, folder: Path, **options: Any) -> tuple[rate.RateResult, list[Any]]:
    seen: list[Any] = []
    result = rate.run(settings, rate.RateOptions(folder=folder, **options), on_event=seen.append)
    return result, seen


def _table(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize(
    ("mode", "server_options", "changes", "rated", "reason"),
    CASES,
    ids=[f"{c[0]}-{c[3]}" for c in CASES],
)
def test_fault_mode(
    mode: str,
    server_options: dict[str, Any],
    changes: dict[str, Any],
    rated: int,
    reason: str | None,
    photos: Path,
    make_settings: Callable[..., Settings],
) -> None:
    with serve(mode=mode, **server_options) as server:
        settings = make_settings(server.base_url, **changes)
        result, seen = _run(settings, photos)
    assert (result.rated, result.failed) == (rated, 4 - rated)
    ratings = _table(settings.db, "SELECT path, overall FROM ratings")
    errors = _table(settings.db, "SELECT path, stage, reason FROM errors")
    assert len(ratings) == rated
    assert len(errors) == 4 - rated
    results = [e for e in seen if isinstance(e, events.ItemResult)]
    assert len(results) == 4
    if reason is None:
        assert all(1 <= overall <= 5 for _path, overall in ratings)
        assert all(e.ok and e.data["keywords"] == ["test image", "colour"] for e in results)
    else:
        for _path, stage, text in errors:
            assert stage == "rate" and re.search(reason, text), text
        assert all(not e.ok and re.search(reason, e.data["reason"]) for e in results)
        assert result.failure_reasons and re.search(reason, next(iter(result.failure_reasons)))
    if mode in ("error_500", "html_200"):
        assert server.request_count == 5
    if mode == "truncated_200":
        assert server.request_count == 6
    if mode == "bad_body":
        assert server.request_count == 4 * 3


def test_rate_limit_waits_for_retry_after(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    with serve(mode="rate_limit", retry_after=0.6, fail_times=1) as server:
        started = time.monotonic()
        result, _seen = _run(make_settings(server.base_url, workers=1, retry_backoff=0.0), photos)
        elapsed = time.monotonic() - started
    assert result.rated == 4 and server.request_count == 5
    assert elapsed >= 0.6


def test_schema_rejected_then_free_text(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    with serve(mode="reject_schema") as server:
        result, _seen = _run(make_settings(server.base_url, workers=1), photos)
        sent_format = ["response_format" in body for body in server.chat_bodies()]
    assert result.rated == 4
    assert sent_format == [True, False, False, False, False]


def test_connection_refused_is_one_clear_error(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    with pytest.raises(ModelServerError, match=r"connection refused.*Start the model server"):
        _run(make_settings(closed_port_url()), photos)


def test_model_taken_from_server_and_logged(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    with serve(model_id="qwen/qwen2.5-vl-7b") as server:
        result, seen = _run(make_settings(server.base_url), photos)
        models = {body["model"] for body in server.chat_bodies()}
    assert models == {"qwen/qwen2.5-vl-7b"}
    assert any(
        "Using model qwen/qwen2.5-vl-7b" in e.message for e in seen if isinstance(e, events.Log)
    )
    assert result.csv_path == photos / "ai_rating_results_qwen_qwen2.5-vl-7b.csv"


def test_concurrent_requests_and_render_ahead(
    folder_of: Callable[[int], Path], make_settings: Callable[..., Settings]
) -> None:
    folder = folder_of(10)
    with serve(latency=0.3, slots=4) as server:
        result, _seen = _run(make_settings(server.base_url, workers=4), folder, xmp=False)
        peak = server.max_concurrent
    assert result.rated == 10
    assert peak >= 3


def test_work_spread_over_several_servers(
    folder_of: Callable[[int], Path], make_settings: Callable[..., Settings]
) -> None:
    folder = folder_of(8)
    with serve(latency=0.1) as first, serve(latency=0.1) as second:
        settings = make_settings(first.base_url, api_urls=(first.base_url, second.base_url))
        result, _seen = _run(settings, folder, csv=True, xmp=False)
        counts = (first.request_count, second.request_count)
    assert result.rated == 8 and sum(counts) == 8 and min(counts) >= 2


def test_skip_existing_and_repair_from_database(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    with serve() as server:
        settings = make_settings(server.base_url)
        first, _ = _run(settings, photos)
        # The CSV is lost: the re-run writes it again from the database, asking nothing.
        assert first.csv_path is not None
        first.csv_path.unlink()
        second, _ = _run(settings, photos)
        assert server.request_count == 4
        third, _ = _run(settings, photos, skip_existing=False, xmp=False)
        assert server.request_count == 8
    assert (second.rated, second.skipped, second.repaired) == (0, 4, 4)
    assert second.csv_rows == 4
    assert (third.rated, third.skipped) == (4, 0)


def test_skip_by_sidecar_when_the_database_is_gone(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    """The sidecars alone say which model rated each image: aimeta reads them itself, and an
    odd one (a DOCTYPE, which it does not take on) through ExifTool."""
    with serve() as server:
        settings = make_settings(server.base_url)
        first, _ = _run(settings, photos, csv=False)
        settings.db.unlink()
        odd = sorted(photos.glob("*.xmp"))[0]
        text = odd.read_text()
        odd.write_text(text.replace("<x:xmpmeta", "<!DOCTYPE x>\n<x:xmpmeta", 1))
        second, _ = _run(settings, photos, csv=False)
        assert server.request_count == 4
    assert (first.rated, second.rated, second.skipped) == (4, 0, 4)


def test_stop_event_ends_the_run_cleanly(
    folder_of: Callable[[int], Path], make_settings: Callable[..., Settings]
) -> None:
    folder = folder_of(12)
    stop = __import__("threading").Event()

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.ItemResult):
            stop.set()

    with serve(latency=0.2, slots=2) as server:
        settings = make_settings(server.base_url, workers=2)
        result = rate.run(settings, rate.RateOptions(folder=folder), on_event=on_event, stop=stop)
        sent = server.request_count
    assert result.stopped and 1 <= result.rated < 12
    assert result.rated == sent  # in-flight calls finished and were written
    assert result.csv_rows == result.rated
    assert len(_table(settings.db, "SELECT * FROM ratings")) == result.rated


def test_options_checked(photos: Path, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("ftp://nowhere", workers=0)
    problems = rate.check_options(settings, rate.RateOptions(folder=photos, xmp=False, csv=False))
    assert set(problems) == {"xmp", "api_urls", "workers"}
    with pytest.raises(UsageError, match="at least one output"):
        rate.run(settings, rate.RateOptions(folder=photos, xmp=False, csv=False))


def test_dry_run_sends_and_writes_nothing(
    photos: Path, make_settings: Callable[..., Settings]
) -> None:
    with serve() as server:
        settings = make_settings(server.base_url)
        result, _seen = _run(settings, photos, dry_run=True)
        assert server.request_count == 0
    assert len(result.to_rate) == 4
    assert not list(photos.glob("*.xmp")) and not list(photos.glob("*.csv"))
    assert not settings.db.exists()
