"""The web page of ``aimeta web``: start, watch and stop one rating job from a browser.

``create_app(settings)`` builds the FastAPI app. The routes keep the names existing scripts
call (``/start_processing``, ``/status``, ...); they call the rate pipeline through
:class:`aimeta.web.jobs.JobRunner` and nothing lower. :mod:`aimeta.web.guard` checks Host,
Origin, the token and body sizes before any route runs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from aimeta import __version__
from aimeta.errors import AimetaError, UsageError
from aimeta.rating import prompt_files
from aimeta.settings import Settings
from aimeta.web import forms
from aimeta.web.guard import Guard, allowed_hosts
from aimeta.web.jobs import JobRunner, JobRunning
from aimeta.web.library import Library, add_rating_route, add_routes

HERE = Path(__file__).parent
# Formats a browser shows itself: served as they are when no rendered JPEG exists yet.
WEB_FORMATS = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
SSE_POLL_S = 0.2
SSE_KEEPALIVE_S = 15.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.1, ::1, localhost and the rest of 127.0.0.0/8."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(
    settings: Settings, *, token: str | None = None, runner: JobRunner | None = None
) -> FastAPI:
    """The app for ``settings`` (host, port, model server, prompts folder, database).

    ``token`` is required when ``settings.host`` is not a loopback address: every request must
    then carry it (see :mod:`aimeta.web.guard`). ``runner`` runs the jobs (default: a new one).
    """
    remote = not is_loopback(settings.host)
    if remote and not token:
        raise UsageError(f"listening on {settings.host} needs --allow-remote and a token")
    jobs = runner or JobRunner()
    shelf = Library.open(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(jobs.close)
        await asyncio.to_thread(shelf.close)

    app = FastAPI(
        title="aimeta web",
        version=__version__,
        description=(
            "Browse, search and rate the indexed images (the library, /library and /api/...);"
            " start, watch and stop an aimeta rating job (/). Local use; see `aimeta web`."
        ),
        lifespan=lifespan,
    )
    app.add_middleware(
        Guard,
        hosts=None if remote else allowed_hosts(settings.host, settings.port),
        token=token,
    )
    app.state.jobs = jobs

    @app.exception_handler(RequestValidationError)
    async def invalid_query(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The same shape as the start form's errors: {field: message}.
        problems: dict[str, str] = {}
        for item in exc.errors():
            problems.setdefault(str(item["loc"][-1]), str(item["msg"]))
        return _invalid(problems)

    app.state.settings = settings
    templates = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", response_class=HTMLResponse, summary="The page")
    def page(request: Request) -> HTMLResponse:
        defaults = {
            "api_urls": "\n".join(settings.api_urls),
            "model": settings.model,
            "workers": settings.workers,
            "size": settings.size,
            "quality": settings.quality,
            "temperature": settings.temperature,
            "converter": settings.converter,
            "sidecar": settings.sidecar,
            "max_tokens": settings.max_tokens,
        }
        return templates.TemplateResponse(
            request, "index.html", {"defaults": defaults, "version": __version__}
        )

    @app.get("/library", response_class=HTMLResponse, summary="The library page")
    def library_page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(
            request, "library.html", {"version": __version__, "database": str(settings.db)}
        )

    add_routes(app, shelf)
    add_rating_route(app, shelf, settings, jobs)

    @app.post(
        "/start_processing",
        summary="Start a rating job",
        responses={
            409: {"description": "A job is already running"},
            422: {"description": "Invalid fields: `errors` maps each field to a message"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": forms.StartForm.model_json_schema()},
                    "application/x-www-form-urlencoded": {
                        "schema": forms.StartForm.model_json_schema()
                    },
                },
            }
        },
    )
    async def start_processing(request: Request) -> JSONResponse:
        if jobs.running:
            return _error(409, "a rating job is already running; stop it first")
        raw = await _body_fields(request)
        if isinstance(raw, JSONResponse):
            return raw
        job_settings, options, problems = forms.check_start(settings, raw)
        if problems or options is None:
            return _invalid(problems)
        try:
            started = jobs.start(job_settings, options)
        except JobRunning as exc:
            return _error(409, str(exc))
        return JSONResponse({**started, "folder": str(options.folder)})

    @app.post("/stop_processing", summary="Stop the running job cleanly")
    def stop_processing() -> dict[str, Any]:
        stopping = jobs.stop()
        return {"stopping": stopping, "state": jobs.status()["state"]}

    @app.get("/status", summary="State, progress, counts and CSV of the current or last job")
    def status() -> dict[str, Any]:
        return jobs.status()

    @app.get("/log", summary="Log entries after sequence number `after`")
    def log(
        after: int = Query(0, ge=0, description="Last sequence number already seen."),
        limit: int = Query(1000, ge=1, le=5000, description="At most this many entries."),
    ) -> dict[str, Any]:
        entries, dropped = jobs.entries_after(after, limit)
        return {
            "entries": [entry.to_dict() for entry in entries],
            "last_seq": entries[-1].seq if entries else max(after, 0),
            "dropped": dropped,
            "running": jobs.running,
        }

    @app.get(
        "/events",
        summary="The log as server-sent events; ends with an `end` event",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def event_stream(
        request: Request,
        after: int | None = Query(None, ge=0, description="Last sequence number already seen."),
    ) -> StreamingResponse:
        last_id = request.headers.get("last-event-id", "")
        start = after if after is not None else int(last_id) if last_id.isdigit() else 0
        return StreamingResponse(
            _sse(request, jobs, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/get_prompts", summary="The system and user prompts a job would use")
    def get_prompts() -> JSONResponse:
        try:
            prompts = prompt_files.load(settings)
        except AimetaError as exc:
            return _error(500, exc.message)
        fixed = [str(p) for p in (settings.system_prompt, settings.user_prompt) if p is not None]
        return JSONResponse(
            {
                "system": prompts.system,
                "user": prompts.user,
                "prompts_dir": str(settings.prompts_dir),
                "fixed_files": fixed,
                "max_bytes": forms.MAX_PROMPT_BYTES,
            }
        )

    @app.post(
        "/save_prompts",
        summary="Save both prompts into the prompts folder of the settings",
        responses={422: {"description": "A prompt is empty or longer than 32 KB"}},
    )
    async def save_prompts(request: Request) -> JSONResponse:
        raw = await _body_fields(request)
        if isinstance(raw, JSONResponse):
            return raw
        try:
            form = forms.PromptsForm.model_validate(raw)
        except ValidationError as exc:
            return _invalid(forms.field_errors(exc))
        try:
            folder = prompt_files.save(
                settings, prompt_files.Prompts(system=form.system, user=form.user)
            )
        except AimetaError as exc:
            return _error(500, exc.message)
        return JSONResponse({"saved_to": str(folder)})

    @app.get(
        "/download_last_csv",
        summary="The CSV of the last job",
        response_class=FileResponse,
        responses={200: {"content": {"text/csv": {}}}, 404: {"description": "No CSV yet"}},
    )
    def download_last_csv() -> Response:
        path = jobs.last_csv()
        if path is None or not path.is_file():
            return _error(404, "no job has written a CSV yet")
        return FileResponse(path, media_type="text/csv", filename=path.name)

    @app.get(
        "/image_proxy",
        summary="The rendered JPEG of an image of the current or last job",
        response_class=FileResponse,
        responses={
            200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
            403: {"description": "Outside the job's folder"},
            404: {"description": "No such image, or nothing a browser can show yet"},
        },
    )
    def image_proxy(
        path: str = Query(..., max_length=4096, description="Image path as the job reported it."),
    ) -> Response:
        return _image(jobs, path)

    return app


def _image(jobs: JobRunner, raw: str) -> Response:
    """Serve an image only from inside the job's folder, after resolving every symlink."""
    folder = jobs.job_folder()
    if folder is None:
        return _error(404, "no job has run yet")
    if not raw or "\x00" in raw:
        return _error(404, "no such image")
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = folder / candidate
    try:
        real = candidate.resolve(strict=True)
        root = folder.resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return _error(404, "no such image")
    if not real.is_relative_to(root):
        return _error(403, "only images inside the folder of the current or last job")
    if not real.is_file():
        return _error(404, "no such image")
    preview = jobs.preview_for(raw) or jobs.preview_for(str(candidate))
    if preview is not None and preview.is_file():
        return FileResponse(preview, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
    media_type = WEB_FORMATS.get(real.suffix.lower())
    if media_type is None:
        return _error(404, "no rendered JPEG of this image yet")
    return FileResponse(real, media_type=media_type, headers={"Cache-Control": "no-store"})


async def _sse(request: Request, jobs: JobRunner, after: int) -> AsyncIterator[str]:
    """Entries after ``after`` as they come; the stream ends with an ``end`` event once no job
    runs and everything has been sent."""
    last_kind = ""
    quiet_for = 0.0
    yield "retry: 2000\n\n"
    while True:
        entries, _dropped = jobs.entries_after(after)
        for entry in entries:
            yield f"id: {entry.seq}\nevent: {entry.kind}\ndata: {json.dumps(entry.to_dict())}\n\n"
            after, last_kind = entry.seq, entry.kind
        if entries:
            quiet_for = 0.0
            continue
        if not jobs.running and jobs.last_seq <= after:
            if last_kind != "end":
                status = {"kind": "end", "seq": after, "data": jobs.status(), "text": "no job runs"}
                yield f"event: end\ndata: {json.dumps(status)}\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(SSE_POLL_S)
        quiet_for += SSE_POLL_S
        if quiet_for >= SSE_KEEPALIVE_S:
            quiet_for = 0.0
            yield ": keep-alive\n\n"


async def _body_fields(request: Request) -> dict[str, Any] | JSONResponse:
    """A JSON object body, or form fields; a 422 response for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return forms.form_fields({key: value for key, value in form.items()})
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError:
        return _invalid({"body": "the body is not valid JSON"})
    if not isinstance(data, dict):
        return _invalid({"body": "send a JSON object"})
    return data


def _invalid(problems: dict[str, str]) -> JSONResponse:
    summary = "; ".join(f"{name}: {message}" for name, message in problems.items())
    return JSONResponse({"detail": summary, "errors": problems}, status_code=422)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)
