"""The cull job: group a folder's images, rank each group with the model, decide, write.

    from aimeta.pipelines import cull
    result = cull.run(settings, cull.CullOptions(folder=Path("photos")), on_event=callback)

Steps of one run (each resumable: a killed run repeated redoes only what was not recorded):

1. **Metadata** (``aimeta all`` on the folder): every image gets its row in ``images`` (the id
   that ``cull_*`` rows reference) and its generation parameters (the AI batches).
2. **Signals** (:mod:`aimeta.rating.signals`) on the rendered JPEG, stored in
   ``cull_signals``; images measured before are not rendered again.
3. **Absolute scores**: ``aimeta rate`` for the images this model has not rated, recording
   into the database only (no sidecar, no CSV of its own).
4. **Groups** (:mod:`aimeta.rating.groups`) and **one request per group**: the group's images
   in order, each after a text part ``Image N``, answered by a best-first ``ranking``
   (:mod:`aimeta.rating.ranking`). A group larger than ``group_size`` is ranked in rounds of
   up to ``group_size`` images that all include the best so far, merged into one order. An
   invalid answer is asked again once, then the group is recorded as failed (its images keep
   their absolute scores). Each ranking is committed to ``cull_rankings`` as it arrives, keyed
   by the group's members and the model, so a re-run never ranks a group twice.
5. **Calibration** (:mod:`aimeta.rating.calibrate`) and the outputs: ``cull_decisions`` and
   ``cull_reasons``, the XMP sidecars (stars only where the user has set none, unless
   ``overwrite``; a Green/Red label for picks/rejects; keywords under ``aimeta cull``) and
   ``ai_cull_results_{model}.csv`` in the folder. These are recomputed from the database on
   every run, so an interrupted run followed by a complete one ends where an uninterrupted
   run ends.

``dry_run`` reads the folder and the database (never writes), measures the signals in memory
and reports the groups and the requests that would be sent.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from PIL import Image

from aimeta import db, events
from aimeta.errors import AimetaError, UsageError
from aimeta.files import atomic_write, find_images
from aimeta.pipelines import rate
from aimeta.pipelines.rate import servers
from aimeta.rating import calibrate, groups, ranking, signals
from aimeta.rating.client import ModelClient
from aimeta.rating.csvout import safe_model_tag
from aimeta.rating.lock import FolderLock
from aimeta.rating.render import IMAGE_SUFFIXES, Renderer
from aimeta.rating.sidecar import CullMark, SidecarWriter
from aimeta.settings import Settings

STAGE = "cull"
Level = Literal["debug", "info", "warning", "error"]
CSV_COLUMNS = ("path", "group", "rank", "group_size", "stars", "pick", "reject", "reasons")


@dataclass(frozen=True)
class CullOptions:
    """What to cull and how (the model, servers and rendering come from Settings)."""

    folder: Path
    xmp: bool = True
    csv: bool = True
    recursive: bool = False
    dry_run: bool = False
    overwrite: bool = False
    group_window: float = groups.DEFAULT_WINDOW_S
    hash_distance: int = groups.DEFAULT_HASH_DISTANCE
    group_size: int = 6
    distribution: tuple[float, ...] = calibrate.DEFAULT_DISTRIBUTION
    rank_prompt: Path | None = None


@dataclass
class CullResult:
    """The summary of one run."""

    model: str = ""
    found: int = 0
    groups: list[list[str]] = field(default_factory=list)  # paths, groups of two or more
    ranked: int = 0  # groups ranked by this run
    reused: int = 0  # groups whose ranking was recorded before
    failed: list[tuple[str, str]] = field(default_factory=list)  # (first path, reason)
    requests: int = 0  # ranking requests sent by this run
    rate_requests: int = 0  # absolute-score requests sent by this run (through rate)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by path
    csv_path: Path | None = None
    stars_kept: int = 0  # sidecars whose user rating was kept
    dry_run: bool = False
    stopped: bool = False

    def count(self, decision: str) -> int:
        return sum(1 for d in self.decisions.values() if d["decision"] == decision)


def check_options(options: CullOptions) -> dict[str, str]:
    """Problems with ``options`` as ``{field: message}``."""
    problems = {}
    if not options.folder.is_dir():
        problems["folder"] = f"{options.folder} is not a folder"
    if not 2 <= options.group_size <= 16:
        problems["group_size"] = "group size must be between 2 and 16"
    if not 0 <= options.hash_distance <= 64:
        problems["hash_distance"] = "hash distance must be between 0 and 64 bits"
    if options.group_window < 0:
        problems["group_window"] = "the group window cannot be negative"
    if options.rank_prompt is not None and not options.rank_prompt.is_file():
        problems["rank_prompt"] = f"{options.rank_prompt} is not a file"
    return problems


def run(
    settings: Settings,
    options: CullOptions,
    *,
    on_event: events.OnEvent = events.ignore,
    stop: threading.Event | None = None,
    transport: httpx.BaseTransport | None = None,
) -> CullResult:
    """Cull ``options.folder``; see the module docstring."""
    problems = check_options(options)
    if problems:
        raise UsageError("; ".join(problems.values()))
    stop = stop or threading.Event()
    result = CullResult(dry_run=options.dry_run)
    paths = _images_in(options, on_event)
    result.found = len(paths)
    if options.dry_run:
        return _dry_run(settings, options, paths, result, on_event)
    from aimeta.pipelines import all as import_all

    import_all.run([options.folder], settings, recursive=options.recursive)
    rated = rate.run(
        settings,
        rate.RateOptions(
            folder=options.folder,
            xmp=False,
            csv=False,
            recursive=options.recursive,
            database_only=True,
        ),
        on_event=on_event,
        stop=stop,
        transport=transport,
    )
    result.model, result.rate_requests = rated.model, rated.rated + rated.failed
    if rated.stopped or stop.is_set():
        result.stopped = True
        return result
    with FolderLock(options.folder), _Job(settings, options, result, on_event, transport) as job:
        job.cull(paths, stop)
    return result


class _Job:
    """The database, renderer and model clients of one run (closed on exit)."""

    def __init__(
        self,
        settings: Settings,
        options: CullOptions,
        result: CullResult,
        on_event: events.OnEvent,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.settings, self.options, self.result = settings, options, result
        self.on_event = on_event
        self.transport = transport
        self.conn = db.connect(settings.db)
        self.renderer = _renderer(settings)
        self.clients: list[ModelClient] = []
        self.prompt = (
            options.rank_prompt.read_text(encoding="utf-8")
            if options.rank_prompt
            else ranking.default_rank_prompt()
        )

    def __enter__(self) -> _Job:
        return self

    def __exit__(self, *_exc: object) -> None:
        for client in self.clients:
            client.close()
        self.renderer.close()
        self.conn.close()

    def cull(self, paths: list[str], stop: threading.Event) -> None:
        ids = _image_ids(self.conn, paths)
        known = [path for path in paths if path in ids]
        for path in sorted(set(paths) - set(known)):
            _log(self.on_event, f"{path}: not in the database (unreadable?); left out", "warning")
        measured = _stored_signals(self.conn, [ids[p] for p in known])
        for path in known:
            if ids[path] not in measured:
                measured[ids[path]] = self._measure_and_store(path, ids[path])
        found = _find_groups(self.conn, self.options, ids, measured, known)
        by_id = {ident: path for path, ident in ids.items()}
        self.result.groups = [[by_id[m] for m in g.members] for g in found if len(g.members) > 1]
        orders = self._rank_groups([g for g in found if len(g.members) > 1], by_id, stop)
        if stop.is_set():
            self.result.stopped = True
            return
        self._decide_and_write(found, orders, measured, by_id)

    def _measure_and_store(self, path: str, ident: int) -> _Measured:
        rendered = self.renderer.render(Path(path))
        measured = _Measured(
            signals.measure(Image.open(io.BytesIO(rendered.jpeg))), _captured(path)
        )
        s = measured.signals
        with db.transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO cull_signals VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    ident,
                    s.sharpness,
                    s.highlights,
                    s.shadows,
                    s.noise,
                    s.width,
                    s.height,
                    measured.captured,
                    s.phash,
                    json.dumps(list(s.reasons)),
                    _now(),
                ),
            )
        return measured

    def _rank_groups(
        self, todo: Sequence[groups.Group], by_id: dict[int, str], stop: threading.Event
    ) -> dict[int, list[int]]:
        """The best-first order of every group of two or more: recorded ones read back, the
        others asked for (in parallel, committed one by one). Failed groups are left out."""
        model = self.result.model
        orders: dict[int, list[int]] = {}
        asking = []
        for group in todo:
            row = self.conn.execute(
                "SELECT order_json FROM cull_rankings WHERE group_key = ? AND model = ?",
                (group.key, model),
            ).fetchone()
            if row is None:
                asking.append(group)
            else:
                orders[group.group_id] = json.loads(row[0])
                self.result.reused += 1
        if not asking:
            return orders
        self.clients = servers.connect(
            self.settings, transport=self.transport, stop=stop, log=self._log
        ).clients
        workers = max(1, self.settings.workers)
        with cf.ThreadPoolExecutor(workers, thread_name_prefix="aimeta-cull") as pool:
            futures = {
                pool.submit(self._rank, group, by_id, index, stop): group
                for index, group in enumerate(asking)
            }
            for future in cf.as_completed(futures):
                group = futures[future]
                try:
                    order, reasons, requests = future.result()
                except AimetaError as exc:
                    self.result.failed.append((by_id[group.members[0]], exc.message))
                    db.record_error(self.conn, by_id[group.members[0]], STAGE, exc.message)
                    self.conn.commit()
                    continue
                self.result.requests += requests
                if order is None:  # stopped before it was sent
                    continue
                self._record(group, order, reasons, requests)
                orders[group.group_id] = order
        return orders

    def _rank(
        self, group: groups.Group, by_id: dict[int, str], index: int, stop: threading.Event
    ) -> tuple[list[int] | None, dict[int, str], int]:
        """One group's order (a model thread): rounds of up to group_size images."""
        if stop.is_set():
            return None, {}, 0
        client = self.clients[index % len(self.clients)]
        size = self.options.group_size
        members = list(group.members)
        order, reasons, requests = self._ask(client, members[:size], by_id)
        rest = members[size:]
        while rest:
            piece, rest = rest[: size - 1], rest[size - 1 :]
            answer, more, sent = self._ask(client, [order[0], *piece], by_id)
            order, requests = _merge(order, answer), requests + sent
            reasons.update(more)
        return order, reasons, requests

    def _ask(
        self, client: ModelClient, members: list[int], by_id: dict[int, str]
    ) -> tuple[list[int], dict[int, str], int]:
        """Rank ``members`` in one request (asked again once when the answer is invalid)."""
        images = [
            (ranking.label(n), self.renderer.render(Path(by_id[ident])).jpeg)
            for n, ident in enumerate(members, start=1)
        ]
        for attempt in (1, 2):
            answer = client.chat_images(
                model=self.result.model,
                system_prompt=self.prompt,
                user_prompt=f"Rank these {len(members)} images, best first.",
                images=images,
                temperature=self.settings.temperature,
                max_tokens=self.settings.max_tokens,
                schema=ranking.ranking_schema(len(members)),
            )
            try:
                parsed = ranking.parse_ranking(answer.text, len(members))
            except AimetaError:
                if attempt == 2:
                    raise
                continue
            order = [members[n - 1] for n in parsed.order]
            return order, {members[n - 1]: r for n, r in parsed.reasons.items()}, attempt
        raise AssertionError("unreachable")

    def _record(
        self, group: groups.Group, order: list[int], reasons: dict[int, str], requests: int
    ) -> None:
        with db.transaction(self.conn):
            self.conn.execute(
                "INSERT OR REPLACE INTO cull_rankings VALUES (?,?,?,?,?,?,?)",
                (
                    group.key,
                    self.result.model,
                    json.dumps(list(group.members)),
                    json.dumps(order),
                    json.dumps({str(k): v for k, v in reasons.items()}),
                    requests,
                    _now(),
                ),
            )
        self.result.ranked += 1

    def _decide_and_write(
        self,
        found: list[groups.Group],
        orders: dict[int, list[int]],
        measured: dict[int, _Measured],
        by_id: dict[int, str],
    ) -> None:
        absolute = read_ai_ratings(self.conn, self.result.model, list(by_id.values()))
        entries = []
        for group in found:
            order = orders.get(group.group_id)
            for ident in group.members:
                entries.append(
                    calibrate.Entry(
                        ident,
                        absolute.get(by_id[ident]),
                        group.group_id if len(group.members) > 1 else None,
                        order.index(ident) + 1 if order else None,
                        len(group.members),
                        measured[ident].signals.reasons,
                    )
                )
        decided = calibrate.calibrate(entries, distribution=self.options.distribution)
        groups_of = {e.image_id: e for e in entries}
        with db.transaction(self.conn):
            now, model = _now(), self.result.model
            for ident, decision in decided.items():
                entry = groups_of[ident]
                self.conn.execute(
                    "INSERT OR REPLACE INTO cull_decisions VALUES (?,?,?,?,?,?,?)",
                    (
                        ident,
                        entry.group_id,
                        entry.rank,
                        decision.stars,
                        decision.decision,
                        model,
                        now,
                    ),
                )
                self.conn.execute("DELETE FROM cull_reasons WHERE image_id = ?", (ident,))
                self.conn.executemany(
                    "INSERT INTO cull_reasons VALUES (?, ?)",
                    [(ident, reason) for reason in decision.reasons],
                )
        for ident, decision in sorted(decided.items(), key=lambda item: by_id[item[0]]):
            entry = groups_of[ident]
            self.result.decisions[by_id[ident]] = {
                "path": by_id[ident],
                "group": entry.group_id,
                "rank": entry.rank,
                "group_size": entry.size if entry.group_id is not None else 1,
                "stars": decision.stars,
                "decision": decision.decision,
                "reasons": list(decision.reasons),
                "score": decision.score,
            }
        if self.options.xmp:
            self._write_sidecars()
        if self.options.csv:
            self.result.csv_path = self._write_csv()

    def _write_sidecars(self) -> None:
        user_rated = _user_rated(self.conn)
        with SidecarWriter(self.settings.exiftool) as writer:
            for path, row in self.result.decisions.items():
                mark = CullMark(row["stars"], row["decision"], tuple(row["reasons"]))
                try:
                    _sidecar, rated = writer.write_cull(
                        Path(path),
                        mark,
                        self.settings.sidecar,
                        overwrite=self.options.overwrite,
                        user_rated=path in user_rated,
                    )
                except AimetaError as exc:
                    self._log(f"{path}: {exc.message}", "error")
                    continue
                self.result.stars_kept += int(not rated)

    def _write_csv(self) -> Path:
        target = self.options.folder / f"ai_cull_results_{safe_model_tag(self.result.model)}.csv"
        with atomic_write(target) as out:
            writer = csv.writer(out)
            writer.writerow(CSV_COLUMNS)
            for path, row in self.result.decisions.items():
                writer.writerow(
                    [
                        path,
                        row["group"] or "",
                        row["rank"] or "",
                        row["group_size"],
                        row["stars"],
                        int(row["decision"] == "pick"),
                        int(row["decision"] == "reject"),
                        ";".join(row["reasons"]),
                    ]
                )
        return target

    def _log(self, message: str, level: Level = "info") -> None:
        _log(self.on_event, message, level)


@dataclass(frozen=True, slots=True)
class _Measured:
    signals: signals.Signals
    captured: float | None


def read_ai_ratings(conn: sqlite3.Connection, model: str, paths: Sequence[str]) -> dict[str, int]:
    """The AI's overall stars (``aimeta rate``) of ``paths`` by ``model``: the one place cull
    reads the ratings table (keyed by path today)."""
    wanted = set(paths)
    rows = conn.execute("SELECT path, overall FROM ratings WHERE model = ?", (model,))
    return {path: int(overall) for path, overall in rows if path in wanted}


def _user_rated(conn: sqlite3.Connection) -> set[str]:
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


def _images_in(options: CullOptions, on_event: events.OnEvent) -> list[str]:
    found = find_images(
        [options.folder],
        recursive=options.recursive,
        extensions=IMAGE_SUFFIXES,
        on_error=lambda path, reason: _log(on_event, f"{path}: {reason}", "warning"),
    )
    return [str(item.path) for item in found]


def _image_ids(conn: sqlite3.Connection, paths: Sequence[str]) -> dict[str, int]:
    wanted = set(paths)
    return {
        path: ident for ident, path in conn.execute("SELECT id, path FROM images") if path in wanted
    }


def _stored_signals(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, _Measured]:
    wanted = set(ids)
    found = {}
    for row in conn.execute(
        "SELECT image_id, sharpness, highlights, shadows, noise, width, height, captured,"
        " phash, reasons_json FROM cull_signals"
    ):
        if row[0] in wanted:
            # brightness is not stored: the stored reasons stand for it.
            values = signals.Signals(row[1], row[2], row[3], 0.5, row[4], row[5], row[6], row[8])
            found[row[0]] = _Measured(values, row[7])
    return found


def _find_groups(
    conn: sqlite3.Connection | None,
    options: CullOptions,
    ids: dict[str, int],
    measured: dict[int, _Measured],
    paths: Sequence[str],
) -> list[groups.Group]:
    params = _batch_params(conn, [ids[p] for p in paths]) if conn is not None else {}
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


def _batch_params(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    wanted = set(ids)
    marks = ",".join("?" * len(groups.BATCH_KEYS))
    params: dict[int, dict[str, str]] = {}
    for ident, key, value in conn.execute(
        f"SELECT image_id, key, value FROM kv WHERE key IN ({marks})", groups.BATCH_KEYS
    ):
        if ident in wanted:
            params.setdefault(ident, {})[key] = value or ""
    return params


def _captured(path: str) -> float | None:
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


def _merge(order: list[int], answer: list[int]) -> list[int]:
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


def _dry_run(
    settings: Settings,
    options: CullOptions,
    paths: list[str],
    result: CullResult,
    on_event: events.OnEvent,
) -> CullResult:
    """Measure in memory, group by hash and time (and by parameters when the database has
    them), and report what would be sent; nothing is written."""
    conn = db.open_existing(settings.db, readonly=True) if Path(settings.db).is_file() else None
    renderer = _renderer(settings)
    try:
        ids = _image_ids(conn, paths) if conn is not None else {}
        ids = {path: ids.get(path, -1 - index) for index, path in enumerate(paths)}
        measured = {
            ids[p]: _Measured(
                signals.measure(Image.open(io.BytesIO(renderer.render(Path(p)).jpeg))),
                _captured(p),
            )
            for p in paths
        }
        found = _find_groups(conn, options, ids, measured, paths)
    finally:
        renderer.close()
        if conn is not None:
            conn.close()
    by_id = {ident: path for path, ident in ids.items()}
    result.groups = [[by_id[m] for m in g.members] for g in found if len(g.members) > 1]
    for members in result.groups:
        rounds = 1 + max(0, -(-(len(members) - options.group_size) // (options.group_size - 1)))
        _log(
            on_event,
            f"group of {len(members)} ({rounds} request(s)): "
            + ", ".join(Path(p).name for p in members),
            "info",
        )
        result.requests += rounds
    for path in paths:
        faults = measured[ids[path]].signals.reasons
        if faults:
            _log(on_event, f"{Path(path).name}: {', '.join(faults)}", "info")
    return result


def _renderer(settings: Settings) -> Renderer:
    return Renderer(
        size=settings.size,
        quality=settings.quality,
        converter=settings.converter,
        darktable_cli=settings.darktable_cli,
        exiftool=settings.exiftool,
        timeout=settings.render_timeout,
    )


def _log(on_event: events.OnEvent, message: str, level: Level = "info") -> None:
    on_event(events.Log(message, level))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
