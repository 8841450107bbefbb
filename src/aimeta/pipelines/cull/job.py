"""One cull run: metadata, signals, absolute scores, groups ranked, decisions written."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import httpx
from PIL import Image

from aimeta import db, events
from aimeta.errors import AimetaError, UsageError
from aimeta.files import atomic_write
from aimeta.pipelines import rate
from aimeta.pipelines.cull.library import (
    Measured,
    captured_time,
    dry_run,
    group_images,
    image_ids,
    images_in,
    log,
    merge_rounds,
    now,
    read_ai_ratings,
    stored_signals,
    user_rated,
)
from aimeta.pipelines.cull.options import (
    CSV_COLUMNS,
    STAGE,
    CullOptions,
    CullResult,
    Level,
    check_options,
)
from aimeta.pipelines.rate import servers
from aimeta.rating import calibrate, groups, ranking, signals
from aimeta.rating.client import ModelClient
from aimeta.rating.csvout import safe_model_tag
from aimeta.rating.lock import FolderLock
from aimeta.rating.render import Renderer
from aimeta.rating.sidecar import CullMark, SidecarWriter
from aimeta.settings import Settings


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
    paths = images_in(options, on_event)
    result.found = len(paths)
    if options.dry_run:
        return dry_run(settings, options, paths, result, on_event)
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
        self.renderer = Renderer.from_settings(settings)
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
        ids = image_ids(self.conn, paths)
        known = [path for path in paths if path in ids]
        for path in sorted(set(paths) - set(known)):
            log(self.on_event, f"{path}: not in the database (unreadable?); left out", "warning")
        measured = stored_signals(self.conn, [ids[p] for p in known])
        for path in known:
            if ids[path] not in measured:
                measured[ids[path]] = self._measure_and_store(path, ids[path])
        found = group_images(self.conn, self.options, ids, measured, known)
        by_id = {ident: path for path, ident in ids.items()}
        self.result.groups = [[by_id[m] for m in g.members] for g in found if len(g.members) > 1]
        orders = self._rank_groups([g for g in found if len(g.members) > 1], by_id, stop)
        if stop.is_set():
            self.result.stopped = True
            return
        self._decide_and_write(found, orders, measured, by_id)

    def _measure_and_store(self, path: str, ident: int) -> Measured:
        rendered = self.renderer.render(Path(path))
        measured = Measured(
            signals.measure(Image.open(io.BytesIO(rendered.jpeg))), captured_time(path)
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
                    now(),
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
            order, requests = merge_rounds(order, answer), requests + sent
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
                    now(),
                ),
            )
        self.result.ranked += 1

    def _decide_and_write(
        self,
        found: list[groups.Group],
        orders: dict[int, list[int]],
        measured: dict[int, Measured],
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
            stamp, model = now(), self.result.model
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
                        stamp,
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
        rated_by_user = user_rated(self.conn)
        with SidecarWriter(self.settings.exiftool) as writer:
            for path, row in self.result.decisions.items():
                mark = CullMark(row["stars"], row["decision"], tuple(row["reasons"]))
                try:
                    _sidecar, rated = writer.write_cull(
                        Path(path),
                        mark,
                        self.settings.sidecar,
                        overwrite=self.options.overwrite,
                        user_rated=path in rated_by_user,
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
        log(self.on_event, message, level)
