"""The library's JSON API: pages of images, one image, its thumbnail and file, the user's
rating, facets. Images are named by id only; no route takes a path.

The database is opened read-only for every read; the one writable connection writes only
``user_ratings`` (the thumbnail cache is a file of its own). User ratings also go to the XMP
sidecar through the same ExifTool writer as ``aimeta rate``, in one thread that owns the
ExifTool process (pyexiftool ends the process with the thread that started it).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Query
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

from aimeta import db
from aimeta.errors import AimetaError, UsageError
from aimeta.pipelines import insight_sql, library, rate
from aimeta.pipelines.search import SearchQuery
from aimeta.pipelines.thumbs import Source, ThumbCache
from aimeta.rating.sidecar import SidecarWriter
from aimeta.settings import Settings
from aimeta.web.jobs import JobRunner, JobRunning

FILE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".avif": "image/avif",
}


class SelectionBody(BaseModel):
    """A selection: ``ids`` (as text, as the API names them), or null for every image
    matching the filters of the query string."""

    model_config = ConfigDict(extra="forbid")
    ids: list[str] | None = Field(None, max_length=library.COUNT_CAP)


class ExportBody(SelectionBody):
    """What to export of a selection: its paths, prompts or tokens."""

    what: str = Field(pattern="^(paths|prompts|tokens)$")


class RatingBody(BaseModel):
    """``{"stars": 0..5}``, ``{"reject": true}`` or ``{"pick": true}`` (false clears)."""

    model_config = ConfigDict(extra="forbid")
    stars: int | None = Field(None, ge=0, le=5)
    reject: bool | None = None
    pick: bool | None = None


@dataclass
class Library:
    """What the routes share: the database path, the thumbnail cache, the rating writer."""

    database: Path
    sidecar_style: str
    _local: threading.local
    _write_lock: threading.Lock
    _writer_thread: ThreadPoolExecutor
    _writer: SidecarWriter | None = None
    _thumbs: ThumbCache | None = None
    _upgraded: bool = False

    @classmethod
    def open(cls, settings: Settings) -> Library:
        return cls(
            settings.db, settings.sidecar, threading.local(), threading.Lock(),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="aimeta-sidecar"),
        )  # fmt: skip

    def read(self) -> sqlite3.Connection:
        """This thread's read-only connection (opened on first use, after bringing the schema
        up to date once: the user_ratings table may be missing in an older database)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self._upgrade_once()
            conn = db.open_readonly(self.database)
            self._local.conn = conn
        return conn

    def _upgrade_once(self) -> None:
        with self._write_lock:
            if getattr(self, "_upgraded", False):
                return
            db.open_existing(self.database).close()
            self._upgraded = True

    def thumbs(self) -> ThumbCache:
        if self._thumbs is None:
            with self._write_lock:  # one cache, however many thumbnails the first page asks
                if self._thumbs is None:
                    self._thumbs = ThumbCache(self.database)
        return self._thumbs

    def rate(self, ident: int, path: Path, stars: int | None, pick: int | None) -> dict[str, Any]:
        """Store the user's rating, then write it to the sidecar (in the writer's thread)."""
        with self._write_lock:
            conn = db.open_existing(self.database)
            try:
                with db.transaction(conn):
                    stored = library.set_user_rating(conn, ident, stars=stars, pick=pick)
            finally:
                conn.close()
        value_pick = -1 if stored.get("reject") else 1 if stored.get("pick") else 0
        sidecar = self._writer_thread.submit(
            self._write_sidecar, path, stored.get("stars"), value_pick, stored["updated_at"]
        ).result()
        return {**stored, "sidecar": str(sidecar)}

    def _write_sidecar(self, path: Path, stars: int | None, pick: int, when: str) -> Path:
        if self._writer is None:
            self._writer = SidecarWriter()
        return self._writer.write_user(path, stars, pick, when, self.sidecar_style)

    def close(self) -> None:
        if self._writer is not None:
            self._writer_thread.submit(self._writer.close).result()
        self._writer_thread.shutdown()


_Route = TypeVar("_Route", bound=Callable[..., Any])
DIMENSION_NAMES = ", ".join(insight_sql.DIMENSIONS)


class _Prefixed:
    """``app.get``/``app.put`` with a path prefix and the library's OpenAPI tag."""

    def __init__(self, app: FastAPI, prefix: str) -> None:
        self.app, self.prefix = app, prefix

    def get(self, path: str, **options: Any) -> Callable[[_Route], _Route]:
        return self.app.get(self.prefix + path, tags=["library"], **options)

    def put(self, path: str, **options: Any) -> Callable[[_Route], _Route]:
        return self.app.put(self.prefix + path, tags=["library"], **options)

    def post(self, path: str, **options: Any) -> Callable[[_Route], _Route]:
        return self.app.post(self.prefix + path, tags=["library"], **options)


def library_query(
    token: list[str] = Query([], description="Positive prompt token (repeat: AND)."),
    not_token: list[str] = Query([], description="Positive token an image must not have."),
    neg_token: list[str] = Query([], description="Negative prompt token."),
    not_neg_token: list[str] = Query([], description="Negative token an image must not have."),
    text: str | None = Query(None, max_length=1000, description="Words of the prompt."),
    model: str | None = Query(None, max_length=500, description="Checkpoint (* pattern)."),
    not_model: list[str] = Query([], description="Checkpoint an image must not use."),
    lora: list[str] = Query([], description="LoRA name (* pattern; repeat: AND)."),
    not_lora: list[str] = Query([], description="LoRA an image must not use."),
    resource: list[str] = Query([], description="KIND:NAME"),
    sampler: str | None = Query(None, max_length=200),
    seed: str | None = Query(None, max_length=40, description="Generation seed."),
    generator: str | None = Query(None, max_length=100),
    min_rating: int | None = Query(None, ge=1, le=5, description="Best AI rating at least."),
    rating_model: str | None = Query(None, max_length=200),
    folder: str | None = Query(None, max_length=4096, description="Path prefix."),
    rated: str | None = Query(None, description="any, ai, user or none"),
    value: list[str] = Query(
        [],
        description="DIMENSION:VALUE as /api/insights names it (its rows' `filter`), e.g."
        " `lora:add_detail @ (0.8, 1]` or `cfg:(6, 8]` (repeat: AND).",
    ),
    has_rating: str | None = Query(
        None, description="Images with a rating of this insights kind: ai, user, pick or any."
    ),
    sort: str = Query("newest", description="newest, oldest, rating, path or random"),
    sort_seed: int = Query(0, ge=0, le=2**31, description="The shuffle of sort=random."),
    limit: int = Query(100, ge=1, le=library.MAX_LIMIT),
    cursor: str | None = Query(None, max_length=2000),
) -> library.LibraryQuery:
    """The query parameters of /api/images and /api/facets (the names of `aimeta search`)."""
    return library.LibraryQuery(
        SearchQuery(
            tokens=tuple(token), not_tokens=tuple(not_token), neg_tokens=tuple(neg_token),
            not_neg_tokens=tuple(not_neg_token), text=text or None, model=model or None,
            loras=tuple(lora), resources=tuple(resource), sampler=sampler or None,
            seed=seed or None, generator=generator or None, min_rating=min_rating,
            rating_model=rating_model or None, limit=0,
        ),
        not_models=tuple(not_model), not_loras=tuple(not_lora),
        folder=folder or None, rated=rated or None, values=tuple(value),
        has_rating=has_rating or None, sort=sort, seed=sort_seed, limit=limit,
        cursor=cursor or None,
    )  # fmt: skip


def add_routes(app: FastAPI, shared: Library) -> None:
    """Add the library's routes to ``app`` (on the app itself, not an included router, so
    that ``app.routes`` lists each of them)."""
    api = _Prefixed(app, "/api")

    @api.get("/images", summary="A page of images matching the filters, in the chosen order")
    def images(query: library.LibraryQuery = Depends(library_query)) -> Response:
        return _answer(lambda: library.page(shared.read(), query).to_dict())

    @api.get("/count", summary="How many images the database holds (polled for new images)")
    def count() -> Response:
        return _answer(lambda: {"images": library.image_count(shared.read())})

    @api.post(
        "/export",
        summary="Paths, prompts or prompt tokens of a selection, one a line",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}}},
    )
    def export(body: ExportBody, query: library.LibraryQuery = Depends(library_query)) -> Response:
        try:
            lines = library.export_lines(shared.read(), _selected(shared, body, query), body.what)
        except ValueError:
            return _error(422, "ids: image ids are integers")
        except UsageError as exc:
            return _error(422, exc.message)
        except AimetaError as exc:
            return _error(503, exc.message)
        name = "paths.txt" if body.what == "paths" else f"selection_{body.what}.txt"
        return Response(
            "".join(line + "\n" for line in lines),
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @api.get("/facets", summary="Top values with counts among the images matching the filters")
    def facets(query: library.LibraryQuery = Depends(library_query)) -> Response:
        return _answer(lambda: library.facets(shared.read(), query))

    @api.get(
        "/insights",
        summary="Which values of a dimension go with good ratings among the filtered images",
        description="Per value of each dimension (`by`), seen on at least `min_images` images"
        " with a rating of kind `rating`: images, mean rating (keep rate for `pick`), delta ="
        " mean minus the baseline of the selection, and its interval (`delta_low`,"
        " `delta_high`), as `aimeta insights --json`; `filter` holds the `value` parameters of"
        " /api/images that select the row's images (with `has_rating`). These are"
        " associations in this library, not causes.",
    )
    def insights(
        query: library.LibraryQuery = Depends(library_query),
        by: list[str] = Query(["lora"], description="Dimensions (repeat): " + DIMENSION_NAMES),
        rating: str = Query("ai", description="ai, user, pick or any"),
        min_images: int = Query(20, ge=1, le=1_000_000),
        confidence: float = Query(0.95, ge=0.5, le=0.999),
        top: int = Query(0, ge=0, le=10_000, description="Best and worst N per dimension."),
    ) -> Response:
        def build() -> dict[str, Any]:
            # Imported here: pandas is loaded only once someone asks for insights.
            from aimeta.pipelines import insights as insights_pipeline

            selection = library.matching_sql(query) if library.filtered(query) else None
            asked = insights_pipeline.InsightQuery(
                dimensions=tuple(by), rating=rating, min_images=min_images,
                selection=selection, rating_model=query.search.rating_model,
                confidence=confidence,
            )  # fmt: skip
            return insights_answer(insights_pipeline.insights(shared.read(), asked), top)

        return _answer(build)

    @api.get("/images/{image_id}", summary="Everything stored about one image")
    def image(image_id: int, raw: bool = Query(False)) -> Response:
        return _answer(lambda: library.detail(shared.read(), image_id, raw=raw))

    @api.get(
        "/images/{image_id}/thumb",
        summary="A JPEG thumbnail (cached)",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    def thumb(image_id: int, size: int = Query(256, ge=16, le=512)) -> Response:
        path = _image_path(shared, image_id)
        if isinstance(path, Response):
            return path
        try:
            jpeg = shared.thumbs().get(Source(image_id, path), size)
        except (OSError, UnidentifiedImageError, ValueError):
            return _error(404, "the file of this image cannot be read")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @api.get(
        "/images/{image_id}/file",
        summary="The image file itself",
        response_class=FileResponse,
    )
    def file(image_id: int) -> Response:
        path = _image_path(shared, image_id)
        if isinstance(path, Response):
            return path
        media_type = FILE_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @api.put("/images/{image_id}/rating", summary="Set the user's own rating of one image")
    def put_rating(image_id: int, body: RatingBody) -> Response:
        if body.stars is None and body.reject is None and body.pick is None:
            return _error(422, 'send {"stars": 0..5}, {"reject": true} or {"pick": true}')
        if body.reject and body.pick:
            return _error(422, "an image is either picked or rejected")
        pick = -1 if body.reject else 1 if body.pick else None
        if pick is None and (body.reject is False or body.pick is False):
            pick = 0
        path = _image_path(shared, image_id, must_exist=False)
        if isinstance(path, Response):
            return path
        try:
            return JSONResponse(shared.rate(image_id, path, body.stars, pick))
        except AimetaError as exc:
            return _error(500, exc.message)


def add_rating_route(app: FastAPI, shared: Library, settings: Settings, jobs: JobRunner) -> None:
    """``POST /api/rate``: rate a selection with the model, as a job of the rating page."""

    @app.post(
        "/api/rate",
        tags=["library"],
        summary="Rate the selected images with the model (a job of the rating page)",
        responses={409: {"description": "A job is already running"}},
    )
    def rate_selection(
        body: SelectionBody, query: library.LibraryQuery = Depends(library_query)
    ) -> Response:
        try:
            ids = _selected(shared, body, query)
            paths = [Path(line) for line in library.export_lines(shared.read(), ids, "paths")]
        except ValueError:
            return _error(422, "ids: image ids are integers")
        except AimetaError as exc:
            return _error(422, exc.message)
        if not paths:
            return _error(422, "no image selected")
        options = selection_options(paths)
        problems = rate.check_options(settings, options)
        if problems:
            return _error(422, "; ".join(f"{name}: {text}" for name, text in problems.items()))
        try:
            started = jobs.start(settings, options)
        except JobRunning as exc:
            return _error(409, str(exc))
        return JSONResponse({**started, "folder": str(options.folder), "images": len(paths)})


def insights_answer(result: Any, top: int) -> dict[str, Any]:
    """The JSON of /api/insights: the baseline, the rows (best and worst ``top`` of each
    dimension; 0: all) with the grid filter of each, and how many values each dimension has."""
    from aimeta.pipelines.insights import COLUMNS

    rows, values = [], {}
    for dimension, frame in result.rows.groupby("dimension", sort=False):
        values[str(dimension)] = len(frame)
        if top and len(frame) > 2 * top:
            frame = frame.iloc[list(range(top)) + list(range(len(frame) - top, len(frame)))]
        for row in frame.to_dict("records"):
            shown = {name: row[name] for name in COLUMNS}
            parts = insight_sql.row_filter(str(dimension), row["first"], row["second"])
            shown["filter"] = [f"{name}:{value}" for name, value in parts]
            rows.append(shown)
    measure = "keep rate" if result.rating == "pick" else "mean rating"
    baseline = {"images": result.baseline_images, "mean": result.baseline_mean}
    return {"rating": result.rating, "measure": measure, "baseline": baseline,
            "values": values, "rows": rows}  # fmt: skip


def selection_options(paths: list[Path]) -> rate.RateOptions:
    """The rating job of a selection: only its files, the folder (its lock, its CSV) the
    deepest one holding them all."""
    folder = Path(os.path.commonpath([str(path.parent) for path in paths]))
    return rate.RateOptions(folder=folder, paths=tuple(paths))


def _selected(shared: Library, body: SelectionBody, query: library.LibraryQuery) -> list[int]:
    """The ids of a selection (ValueError: an id is not an integer)."""
    if body.ids is None:
        return library.selection_ids(shared.read(), query)
    return [int(ident) for ident in body.ids]


def _image_path(shared: Library, image_id: int, *, must_exist: bool = True) -> Path | Response:
    try:
        row = shared.read().execute("SELECT path FROM images WHERE id = ?", (image_id,)).fetchone()
    except AimetaError as exc:
        return _error(503, exc.message)
    if row is None:
        return _error(404, "no image with this id")
    path = Path(row[0])
    if must_exist and not path.is_file():
        return _error(404, "the file of this image is gone")
    return path


def _answer(build: Any) -> Response:
    try:
        result = build()
    except UsageError as exc:
        return _error(422, exc.message)
    except AimetaError as exc:
        return _error(503, exc.message)
    if result is None:
        return _error(404, "no image with this id")
    return JSONResponse(result)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)
