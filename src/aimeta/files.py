"""Finding image files and writing output files safely (shared by every pipeline)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aimeta.errors import InputError, OutputError

RAW_EXTENSIONS = frozenset(
    {".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2", ".pef", ".srw"}
)
WEB_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
IMAGE_EXTENSIONS = (
    WEB_EXTENSIONS
    | RAW_EXTENSIONS
    | frozenset({".tif", ".tiff", ".gif", ".bmp", ".heic", ".heif", ".avif", ".jxl"})
)
# The largest XMP packet aimeta parses itself, in an image (the native reader) or a sidecar
# (the rating half); anything bigger is left to ExifTool or refused.
MAX_XMP_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FoundFile:
    """An image file and the folder it was found under (``root``)."""

    path: Path
    root: Path

    @property
    def key(self) -> str:
        """The stable identity of the image: root folder name + path relative to the root."""
        path, root = str(self.path), str(self.root)
        if path.startswith(root.rstrip(os.sep) + os.sep):
            # The path's text below the root's: a tenth of what relative_to costs, which a
            # watcher re-linking a moved folder of 10,000 files pays per file.
            relative = path[len(root.rstrip(os.sep)) + 1 :].replace(os.sep, "/")
        else:
            relative = self.path.relative_to(self.root).as_posix()
        return f"{self.root.name}/{relative}" if self.root.name else relative


def find_images(
    inputs: Sequence[Path],
    *,
    recursive: bool = True,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
    on_error: Callable[[str, str], None] | None = None,
) -> list[FoundFile]:
    """Image files under ``inputs`` (files or folders), sorted, each once.

    Folders that cannot be listed are reported through ``on_error(path, reason)`` and skipped;
    symbolic links to folders are not followed (no loops), links to files are read.
    """
    # Keyed and sorted by the path's text (keyed as the system compares paths: without case
    # on Windows): hashing and comparing Path objects costs more than listing the folders,
    # and a re-run over 20,000 files lists them all again.
    found: dict[str, tuple[str, FoundFile]] = {}
    for given in inputs:
        root = Path(os.path.abspath(given))
        if root.is_file():
            if root.suffix.lower() in extensions:
                found.setdefault(os.path.normcase(root), (str(root), FoundFile(root, root.parent)))
            continue
        if not root.is_dir():
            raise InputError(f"{given}: no such file or folder")
        for text in _walk(root, recursive, extensions, on_error):
            key = os.path.normcase(text)
            if key not in found:
                found[key] = (text, FoundFile(Path(text), root))
    return [item for _text, item in sorted(found.values(), key=lambda pair: pair[0])]


def image_paths(folder: Path) -> list[str]:
    """The image files under ``folder``, as text, without anything else (``aimeta watch``
    lists a folder that appeared this way: a Path object per file would cost more)."""
    return list(_walk(folder, True, IMAGE_EXTENSIONS, None))


def _walk(
    root: Path,
    recursive: bool,
    extensions: frozenset[str],
    on_error: Callable[[str, str], None] | None,
) -> Iterator[str]:
    """Paths of the files under ``root`` with one of ``extensions``. The directory listing
    says what each entry is, so only symbolic links cost a stat call (re-runs list every file
    again)."""
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            if on_error is not None:
                on_error(str(exc.filename or folder), exc.strerror or str(exc))
            continue
        subfolders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(Path(entry.path))
                continue
            if os.path.splitext(entry.name)[1].lower() not in extensions:
                continue
            # A directory named x.png, a dangling link or a socket is not an image file.
            if _follows_to(entry, os.DirEntry.is_file):
                yield entry.path
            elif (
                on_error is not None
                and entry.is_symlink()
                and not _follows_to(entry, os.DirEntry.is_dir)
            ):
                on_error(entry.path, "broken symbolic link")
        if recursive:
            folders.extend(reversed(subfolders))


def _follows_to(entry: os.DirEntry[str], kind: Callable[[os.DirEntry[str]], bool]) -> bool:
    """``entry.is_file()``/``is_dir()``, False where following a link fails (a link loop)."""
    try:
        return kind(entry)
    except OSError:
        return False


def _read_umask() -> int:
    # os.umask can only be read by setting it: done once, at import, while no other thread
    # can create a file under the temporary value.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_write(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[str]]:
    """Write to a temporary file next to ``path`` and rename it over ``path`` at the end.

    A failure (full disk, killed process) leaves the previous file untouched.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(
            handle, mode, encoding=encoding, newline="" if "b" not in mode else None
        ) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        # mkstemp creates the file private (0600); give it the permissions of a normal file.
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
