"""Shared pieces of the command line: the Typer app, consoles, error handling, progress."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aimeta import __version__, events, settings
from aimeta.errors import AimetaError, UsageError

app = typer.Typer(
    name="aimeta",
    help=(
        "Read, normalise and search the generation metadata of AI images, and rate images "
        "with a local vision LLM.\n\nQuick start: `aimeta all Input/` reads every image "
        "below Input/ into out/images.db."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help text: square brackets in help (`[default: ...]`) stay visible.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Data goes to stdout, status to stderr (so `aimeta ... --out - | sort` works).
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aimeta {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Read, normalise and search AI image metadata; rate images with a local vision LLM."""
    # Here, once per command: a misspelt AIMETA_* variable or toml key would otherwise be
    # ignored without a word.
    for line in settings.name_warnings():
        stderr.print(f"[yellow]Warning:[/yellow] {escape(line)}", highlight=False)


def setting_option(
    name: str, *flags: str, help: str | None = None, annotated: bool = False, **extra: Any
) -> Any:
    """The flag of setting ``name``: ``None`` when not given (the environment, aimeta.toml or
    the built-in default then decide), with the setting's help (unless ``help`` says it for
    this command) and the default that ``Settings`` declares.

    ``annotated``: for ``Annotated[..., option]`` parameters, which give no default here.
    """
    text = help or settings.help_text(name)
    shown: str | bool = settings.default_text(name) or False
    if annotated:
        return typer.Option(*flags, help=text, show_default=shown, **extra)
    return typer.Option(None, *flags, help=text, show_default=shown, **extra)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn AimetaError into one ``Error: ...`` line and exit 1 (2 for usage errors)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UsageError as exc:
            stderr.print(f"[red]Error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(code=2) from exc
        except AimetaError as exc:
            stderr.print(f"[red]Error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(code=1) from exc
        except OSError as exc:
            # Anything the system refuses that no layer below turned into an AimetaError
            # (e.g. the working folder was deleted): one line, not a traceback.
            where = f" ({exc.filename})" if exc.filename else ""
            stderr.print(f"[red]Error:[/red] {exc.strerror or exc}{where}", highlight=False)
            raise typer.Exit(code=1) from exc
        except KeyboardInterrupt:
            stderr.print("Interrupted.")
            raise typer.Exit(code=130) from None

    return wrapper


@contextmanager
def progress_events(quiet: bool = False) -> Iterator[events.OnEvent]:
    """An ``on_event`` callback that draws a rich progress bar on stderr and prints log lines."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=quiet or not stderr.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.Started):
            tasks[event.stage] = bar.add_task(event.stage, total=event.total, rate="")
        elif isinstance(event, events.Progress):
            task = tasks.get(event.stage)
            if task is not None:
                bar.advance(task, event.advance)
                speed = next((t.speed for t in bar.tasks if t.id == task), None)
                bar.update(task, rate=f"{speed:,.0f}/s" if speed else "")
        elif isinstance(event, events.Finished):
            task = tasks.pop(event.stage, None)
            if task is not None:
                bar.remove_task(task)
        elif isinstance(event, events.Log):
            if quiet and event.level in ("debug", "info"):
                return
            if event.level == "debug":
                return
            style = {"warning": "yellow", "error": "red"}.get(event.level, "")
            bar.console.print(event.message, style=style, highlight=False, markup=False)

    with bar:
        yield on_event


def is_stdout(path: Any) -> bool:
    """True when a path option means standard output (``-``)."""
    return str(path) == "-"


def die(message: str, code: int = 1) -> None:
    """Print one error line and exit (for checks in the CLI layer itself)."""
    stderr.print(f"[red]Error:[/red] {message}", highlight=False)
    raise typer.Exit(code=code)


def flush_stdout() -> None:
    sys.stdout.flush()


@contextmanager
def stop_on_ctrl_c(stop: threading.Event) -> Iterator[None]:
    """For `rate` and `cull`: first Ctrl-C: stop cleanly (outputs flushed). Second: exit at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(130)  # the CSV and sidecars are written atomically: nothing half-written
        stop.set()
        stderr.print("Stopping after the images in progress... (Ctrl-C again to quit at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
