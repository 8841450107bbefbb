"""One writer per rated folder: a lock file that a second rating job finds taken.

Two jobs rating one folder (``aimeta rate`` and a job of ``aimeta web``, or two terminals)
would both rewrite the folder's CSV from their own rows, so the one that flushes last drops
the other's rows, and both would write the same sidecars through ExifTool, each removing the
other's temporary file as stale. ``FolderLock`` makes the second job stop at once with a
clear message instead. The lock is an OS file lock (``flock`` / ``msvcrt.locking``): a killed
process releases it, so a crash never leaves the folder locked.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import TracebackType

from aimeta.errors import InputError

LOCK_NAME = ".aimeta-rate.lock"


class FolderBusy(InputError):
    """Another aimeta process is rating this folder; wait for it to finish or stop it."""


class FolderLock:
    """Hold the rating lock of ``folder`` inside a ``with`` block.

    Raise FolderBusy when another process holds it. A folder where no lock file can be
    created (read-only) is not locked: nothing can be written into it by either job.
    """

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        for _attempt in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return self  # read-only or vanished folder: nothing to protect here
            if not _try_lock(fd):
                holder = _read_holder(fd)
                os.close(fd)
                who = f" (pid {holder})" if holder else ""
                raise FolderBusy(
                    f"{self.path.parent} is being rated by another aimeta process{who}; "
                    "wait for it to finish or stop it, then run again"
                )
            # The holder before us may have removed the file between our open and lock:
            # then we locked a file nobody else will see, so start again.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if same:
                self._fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode("ascii"))
                return self
            os.close(fd)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._fd is None:
            return
        # Removed while still locked, so a waiting process re-checks and takes a fresh file.
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing releases the lock
        self._fd = None


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _read_holder(fd: int) -> str:
    """The pid the holder wrote into the lock file ("" when unknown)."""
    with contextlib.suppress(OSError):
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        return text if text.isdigit() else ""
    return ""
