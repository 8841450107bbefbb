"""Render an image file to a small JPEG for the model: darktable-cli, Pillow, or a RAW's preview.

``Renderer(...).render(path)`` returns the JPEG bytes, bounded by ``size`` on both sides.

- darktable-cli (``converter="darktable"``, or ``"auto"`` when it is installed) develops the
  file with its own sidecar, so the model sees the user's edits. Each worker thread gets a
  private ``--configdir`` so several instances run at once; each render writes to a fresh
  temporary folder and has a time limit.
- Pillow reads JPEG, PNG, WebP and TIFF (draft decoding for speed, EXIF orientation applied).
- A RAW file without darktable falls back to the preview JPEG embedded in it (ExifTool
  ``-b -PreviewImage``/``-JpgFromRaw``); a RAW without one fails with a clear reason.

Thread-safe: one Renderer serves a whole pool of render threads.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from aimeta.errors import InputError
from aimeta.settings import Settings

PILLOW_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"})
RAW_SUFFIXES = frozenset(
    {".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2", ".pef", ".srw"}
)
IMAGE_SUFFIXES = PILLOW_SUFFIXES | RAW_SUFFIXES
CONVERTERS = ("auto", "darktable", "pillow")
# Pixels Pillow will decode before calling a file a decompression bomb (~16k x 16k).
MAX_PIXELS = 268_000_000


class RenderError(InputError):
    """The image could not be rendered."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """A JPEG ready to send, and which way it was made."""

    jpeg: bytes
    width: int
    height: int
    via: str  # darktable | pillow | raw-preview


def darktable_available(darktable_cli: str) -> bool:
    """True when the darktable-cli program can be found."""
    return shutil.which(darktable_cli) is not None


def choose_converter(converter: str, darktable_cli: str) -> str:
    """``auto`` becomes ``darktable`` when darktable-cli is installed, else ``pillow``."""
    if converter not in CONVERTERS:
        raise InputError(f"unknown converter {converter!r}; use one of {', '.join(CONVERTERS)}")
    if converter == "auto":
        return "darktable" if darktable_available(darktable_cli) else "pillow"
    if converter == "darktable" and not darktable_available(darktable_cli):
        raise InputError(
            f"darktable-cli not found ({darktable_cli}); install darktable or use "
            "--converter pillow"
        )
    return converter


class Renderer:
    """Turns image files into JPEG bytes; see the module docstring for the order of methods."""

    def __init__(
        self,
        *,
        size: int = 896,
        quality: int = 90,
        converter: str = "auto",
        darktable_cli: str = "darktable-cli",
        exiftool: str = "exiftool",
        timeout: float = 120.0,
    ) -> None:
        self.size = size
        self.quality = quality
        self.explicit_darktable = converter == "darktable"
        self.converter = choose_converter(converter, darktable_cli)
        self.darktable_cli = darktable_cli
        self.exiftool = exiftool
        self.timeout = timeout
        self._local = threading.local()
        self._config_dirs: list[str] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Renderer:
        """The renderer the rating settings ask for (``rate`` and ``cull`` share it)."""
        return cls(
            size=settings.size,
            quality=settings.quality,
            converter=settings.converter,
            darktable_cli=settings.darktable_cli,
            exiftool=settings.exiftool,
            timeout=settings.render_timeout,
        )

    def render(self, path: Path) -> Rendered:
        """The JPEG for ``path``; raise RenderError with the reason when it cannot be made."""
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise RenderError(f"not an image type aimeta rates ({suffix or 'no extension'})")
        if not path.is_file():
            raise RenderError("not a readable file")
        if self.converter == "darktable":
            try:
                return self._darktable(path)
            except RenderError:
                # darktable cannot read every file Pillow can; in auto mode use Pillow then.
                if self.explicit_darktable or suffix not in PILLOW_SUFFIXES:
                    raise
        if suffix in RAW_SUFFIXES:
            return self._raw_preview(path)
        with self._open(path) as image:
            return self._to_jpeg(image, "pillow")

    def close(self) -> None:
        """Remove the private darktable config folders."""
        with self._lock:
            for folder in self._config_dirs:
                shutil.rmtree(folder, ignore_errors=True)
            self._config_dirs.clear()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _config_dir(self) -> str:
        folder: str | None = getattr(self._local, "config_dir", None)
        if folder is None:
            folder = tempfile.mkdtemp(prefix="aimeta-darktable-")
            self._local.config_dir = folder
            with self._lock:
                self._config_dirs.append(folder)
        return folder

    def _darktable(self, path: Path) -> Rendered:
        source = path.resolve()
        with tempfile.TemporaryDirectory(prefix="aimeta-render-") as out_dir:
            output = Path(out_dir) / "render.jpg"
            command = [self.darktable_cli, str(source)]
            sidecar = source.with_name(source.name + ".xmp")
            if sidecar.is_file():
                command.append(str(sidecar))
            command += [
                str(output),
                "--width",
                str(self.size),
                "--height",
                str(self.size),
                "--hq",
                "false",
                "--upscale",
                "false",
                "--apply-custom-presets",
                "false",
                "--core",
                "--configdir",
                self._config_dir(),
                "--conf",
                f"plugins/imageio/format/jpeg/quality={self.quality}",
            ]
            _run(command, self.timeout, "darktable-cli")
            if not output.is_file():
                raise RenderError("darktable-cli wrote no image (it cannot read this file?)")
            with self._open(output) as image:
                return self._to_jpeg(image, "darktable")

    def _raw_preview(self, path: Path) -> Rendered:
        source = str(path.resolve())  # absolute: a name starting with '-' is no option
        for tag in ("-PreviewImage", "-JpgFromRaw"):
            try:
                data = _run([self.exiftool, "-b", tag, source], self.timeout, "exiftool")
            except RenderError:
                data = b""  # ExifTool cannot read the file at all: no preview either
            if len(data) > 100:
                orientation = _run(
                    [self.exiftool, "-n", "-s3", "-Orientation", source], self.timeout, "exiftool"
                )
                with self._open_bytes(data, path) as image:
                    image = _orient(image, orientation.decode("ascii", "replace").strip())
                    return self._to_jpeg(image, "raw-preview")
        raise RenderError(
            "no darktable-cli to develop this RAW file and no preview JPEG inside it; "
            "install darktable to rate it"
        )

    def _open(self, path: Path) -> Image.Image:
        try:
            image = Image.open(path)
            self._check_size(image)
            # JPEG draft mode decodes at a reduced scale directly: far faster for big photos.
            image.draft("RGB", (self.size, self.size))
            image.load()
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise RenderError(f"cannot read the image: {exc}") from exc
        return image

    def _open_bytes(self, data: bytes, path: Path) -> Image.Image:
        try:
            image = Image.open(io.BytesIO(data))
            self._check_size(image)
            image.draft("RGB", (self.size, self.size))
            image.load()
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise RenderError(f"cannot read the preview inside {path.name}: {exc}") from exc
        return image

    def _check_size(self, image: Image.Image) -> None:
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise RenderError(f"image too large to render ({width}x{height})")

    def _to_jpeg(self, image: Image.Image, via: str) -> Rendered:
        try:
            image = ImageOps.exif_transpose(image) or image
            if image.mode in ("RGBA", "LA", "PA") or (
                image.mode == "P" and "transparency" in image.info
            ):
                # Transparent areas become white, not black, as viewers show them.
                rgba = image.convert("RGBA")
                background = Image.new("RGB", rgba.size, (255, 255, 255))
                background.paste(rgba, mask=rgba.getchannel("A"))
                image = background
            elif image.mode != "RGB":
                image = image.convert("RGB")
            image.thumbnail((self.size, self.size), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=self.quality)
        except (OSError, ValueError) as exc:
            raise RenderError(f"cannot convert the image: {exc}") from exc
        return Rendered(buffer.getvalue(), image.width, image.height, via)


def _orient(image: Image.Image, orientation: str) -> Image.Image:
    """Apply a RAW file's EXIF orientation to its preview (which usually has none of its own)."""
    transpose = {
        "2": Image.Transpose.FLIP_LEFT_RIGHT,
        "3": Image.Transpose.ROTATE_180,
        "4": Image.Transpose.FLIP_TOP_BOTTOM,
        "5": Image.Transpose.TRANSPOSE,
        "6": Image.Transpose.ROTATE_270,
        "7": Image.Transpose.TRANSVERSE,
        "8": Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image.transpose(transpose) if transpose is not None else image


def _run(command: list[str], timeout: float, name: str) -> bytes:
    """Run a program with list arguments (never a shell); kill its process group on time-out."""
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise RenderError(f"cannot start {name}: {exc.strerror}") from exc
    try:
        output, errors = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise RenderError(f"{name} took longer than {timeout:g} s") from None
    except BaseException:
        _kill_group(process)
        raise
    if process.returncode != 0:
        last = errors.decode("utf-8", "replace").strip().splitlines()
        reason = last[-1] if last else f"exit status {process.returncode}"
        raise RenderError(f"{name} failed: {reason}")
    return output


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
