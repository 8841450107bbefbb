"""Start many `aimeta` processes fast: import aimeta once, then fork one child per command.

Python needs about a second here to import aimeta (typer, rich, pandas, ...). The kill tests
start hundreds of runs, so this small server imports ``aimeta.cli`` once and forks a child
for each command; the child runs ``aimeta.cli.main()`` with the given argv, exactly as
``python -m aimeta ARGS`` does, in its own process group (so a SIGKILL of the group also
stops the ExifTool processes it started). Protocol: one JSON object per line on stdin, one
answer per line on stdout.

    {"op": "run", "argv": [...], "cwd": "...", "env": {...}, "out": "file", "err": "file"}
        -> {"pid": 123}
    {"op": "wait", "pid": 123}
        -> {"code": 0 | null, "signal": 9 | null, "maxrss_kb": 45000}
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import aimeta.cli  # imported once, before any fork

# The commands import their heavy modules lazily; import them here so every child starts warm.
for _name in ("all", "dump", "ingest", "export", "resources", "resolve", "rate", "wildcards"):
    __import__(f"aimeta.pipelines.{_name}")
import httpx  # noqa: E402,F401
import pandas  # noqa: E402,F401
import PIL.Image  # noqa: E402,F401


def _child(request: dict[str, Any]) -> None:
    os.setpgid(0, 0)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, name in ((1, request["out"]), (2, request["err"])):
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    sys.argv = ["aimeta", *request["argv"]]
    code = 0
    try:
        aimeta.cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a crash: print it as Python would and exit 1
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "run":
            pid = os.fork()
            if pid == 0:
                _child(request)
            answer: dict[str, Any] = {"pid": pid}
        else:
            _pid, status, usage = os.wait4(request["pid"], 0)
            answer = {
                "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                "maxrss_kb": usage.ru_maxrss,
            }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
