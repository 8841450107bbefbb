"""The ``web`` command: serve the library and the rating page on this machine."""

from __future__ import annotations

import secrets
import socket

import typer
from rich.markup import escape

from aimeta import settings
from aimeta.cli.common import app, die, handle_errors, setting_option, stderr


@app.command()
@handle_errors
def web(
    host: str = setting_option("host", "--host"),
    port: int = setting_option("port", "--port"),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a host other than this machine; every request then needs the printed token.",
    ),
) -> None:
    """Serve the library (/library: browse, search and rate every indexed image by hand) and
    the rating page (/: start, watch and stop a rating job, the same job as `aimeta rate`:
    progress, live log, each image with its scores, a sortable results table, the prompt
    editor and the CSV download).

    Example: aimeta web --port 5000   (then open http://127.0.0.1:5000/)
    """
    # Imported here, not at start-up: FastAPI, Starlette and uvicorn cost every other command
    # ~0.3 s (tests/web/test_web_command.py checks they stay out of the other commands).
    import uvicorn

    from aimeta.web.app import create_app, is_loopback

    config = settings.resolve({"host": host, "port": port})
    remote = not is_loopback(config.host)
    if remote and not allow_remote:
        die(
            escape(
                f"--host {config.host} lets other machines reach the page; add --allow-remote "
                "to do that on purpose (a token is then required)"
            ),
            code=2,
        )
    _check_port_free(config.host, config.port)
    token = secrets.token_urlsafe(24) if remote else None
    application = create_app(config, token=token)
    shown_host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{shown_host}:{config.port}/"
    if token:
        stderr.print(f"aimeta web: {url}?token={token}", highlight=False, soft_wrap=True)
        stderr.print(
            "Every request needs this token (open the page with ?token=..., or send the "
            "X-Aimeta-Token header). Use the machine's own address in place of "
            f"{config.host} when it is a wildcard.",
            highlight=False,
        )
    else:
        stderr.print(f"aimeta web: {url}  (Ctrl-C to stop)", highlight=False)
    uvicorn.run(application, host=config.host, port=config.port, log_level="warning")


def _check_port_free(host: str, port: int) -> None:
    """Fail with one clear line when the port is taken, before uvicorn logs a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        die(escape(f"cannot listen on {host}:{port}: {exc.strerror or exc}"))
