"""What a cull run reads: the folder's images, their ids, stored signals, generation
parameters and capture times, the AI's ratings and the user's; and the dry run."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from aimeta import db, events
from aimeta.files import find_images
from aimeta.pipelines.cull.options import CullOptions, CullResult, Level
from aimeta.rating import groups, signals
from aimeta.rating.render import IMAGE_SUFFIXES, Renderer
from aimeta.settings import Settings


@dataclass(frozen=True, slots=True)
class Measured:
    signals: signals.Signals
    captured: float | None


def read_ai_ratings(conn: sqlite3.Connection, model: str, paths: Sequence[str]) -> dict[str, int]:
    """The AI's overall stars (``aimeta rate``) of ``paths`` by ``model``: the one place cull
    reads the ratings table (keyed by path today)."""
    wanted = set(paths)
    rows = conn.execute("SELECT path, overall FROM ratings WHERE model = ?", (model,))
    return {path: int(overall) for path, overall in rows if path in wanted}


def user_rated(conn: sqlite3.Connection) -> set[str]:
    """Paths with a star rating of the user's own in ``user_ratings`` (when that table
    exists: it comes with the library)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'user_ratings'"
    ).fetchone()
    if not exists:
        return set()
    rows = conn.execute(
        "SELECT i.path FROM user_ratings u JOIN images i ON i.id = u.image_id"
        " WHERE u.stars IS NOT NULL"
    )
    return {row[0] for row in rows}


def images_in(options: CullOptions, on_event: events.OnEvent) -> list[str]:
    found = find_images(
        [options.folder],
        recursive=options.recursive,
        extensions=IMAGE_SUFFIXES,
        on_error=lambda path, reason: log(on_event, f"{path}: {reason}", "warning"),
    )
    return [str(item.path) for item in found]


def image_ids(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, int]:
    wanted = set(paths)
    return {
        path: ident for ident, path in conn.execute("SELECT id, path FROM images") if path in wanted
    }


def stored_signals(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, Measured]:
    wanted = set(ids)
    found = {}
    for row in conn.execute(
        "SELECT image_id, sharpness, highlights, shadows, noise, width, height, captured,"
        " phash, reasons_json FROM cull_signals"
    ):
        if row[0] in wanted:
            # brightness is not stored: the stored reasons stand for it.
            values = signals.Signals(row[1], row[2], row[3], 0.5, row[4], row[5], row[6], row[8])
            found[row[0]] = Measured(values, row[7])
    return found


def group_images(
    conn: sqlite3.Connection | None,
    options: CullOptions,
    ids: dict[str, int],
    measured: dict[int, Measured],
    paths: Sequence[str],
) -> list[groups.Group]:
    params = batch_params(conn, [ids[p] for p in paths]) if conn is not None else {}
    items = [
        groups.Item(
            ids[path],
            measured[ids[path]].signals.phash,
            measured[ids[path]].captured,
            groups.batch_key(params.get(ids[path], {})),
        )
        for path in paths
    ]
    return groups.find_groups(
        items, window=options.group_window, hash_distance=options.hash_distance
    )


def batch_params(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    # Image by image through kv's primary key (image_id, key), the ids as one JSON list as
    # export does: reading these keys for the whole library cost the library's size.
    keys = ",".join("?" * len(groups.BATCH_KEYS))
    params: dict[int, dict[str, str]] = {}
    rows = conn.execute(
        "SELECT image_id, key, value FROM kv"
        f" WHERE image_id IN (SELECT value FROM json_each(?)) AND key IN ({keys})",
        [json.dumps(list(ids)), *groups.BATCH_KEYS],
    )
    for ident, key, value in rows:
        params.setdefault(ident, {})[key] = value or ""
    return params


def captured_time(path: str) -> float | None:
    """The EXIF capture time (DateTimeOriginal, else DateTime) in seconds; None without."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            text = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
    except (OSError, ValueError, SyntaxError):
        return None
    try:
        moment = datetime.strptime(str(text).strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


def merge_rounds(order: list[int], answer: list[int]) -> list[int]:
    """Merge the order so far with a round that ranked its best (``order[0]``, the anchor)
    against new images: those ranked above the anchor go before it; those below are
    interleaved with the rest of ``order`` by their relative position in their round."""
    anchor = order[0]
    cut = answer.index(anchor)
    above, below = answer[:cut], answer[cut + 1 :]
    rest = order[1:]
    placed = [(index / max(1, len(rest)), 0, ident) for index, ident in enumerate(rest)]
    placed += [(index / max(1, len(below)), 1, ident) for index, ident in enumerate(below)]
    return [*above, anchor, *(ident for _pos, _src, ident in sorted(placed))]


def dry_run(
    settings: Settings,
    options: CullOptions,
    paths: list[str],
    result: CullResult,
    on_event: events.OnEvent,
) -> CullResult:
    """Measure in memory, group by hash and time (and by parameters when the database has
    them), and report what would be sent; nothing is written."""
    conn = db.open_existing(settings.db, readonly=True) if Path(settings.db).is_file() else None
    render_with = Renderer.from_settings(settings)
    try:
        ids = image_ids(conn, paths) if conn is not None else {}
        ids = {path: ids.get(path, -1 - index) for index, path in enumerate(paths)}
        measured = {
            ids[p]: Measured(
                signals.measure(Image.open(io.BytesIO(render_with.render(Path(p)).jpeg))),
                captured_time(p),
            )
            for p in paths
        }
        found = group_images(conn, options, ids, measured, paths)
    finally:
        render_with.close()
        if conn is not None:
            conn.close()
    by_id = {ident: path for path, ident in ids.items()}
    result.groups = [[by_id[m] for m in g.members] for g in found if len(g.members) > 1]
    for members in result.groups:
        rounds = 1 + max(0, -(-(len(members) - options.group_size) // (options.group_size - 1)))
        log(
            on_event,
            f"group of {len(members)} ({rounds} request(s)): "
            + ", ".join(Path(p).name for p in members),
            "info",
        )
        result.requests += rounds
    for path in paths:
        faults = measured[ids[path]].signals.reasons
        if faults:
            log(on_event, f"{Path(path).name}: {', '.join(faults)}", "info")
    return result


def log(on_event: events.OnEvent, message: str, level: Level = "info") -> None:
    on_event(events.Log(message, level))


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
