"""Write ratings into XMP sidecars through ExifTool (never hand-built XML, never the image).

- The sidecar of ``IMG_1.CR2`` is ``IMG_1.CR2.xmp`` (darktable) or ``IMG_1.xmp`` (Adobe). An
  existing one is updated in place; otherwise one is created in the chosen style.
- Written: ``xmp:Rating`` (overall stars), the keywords added to ``dc:subject`` and
  ``lr:hierarchicalSubject`` (existing keywords kept, none duplicated case-insensitively), and
  aimeta's own properties in the ``aimeta`` namespace defined by ``aimeta.config`` (model,
  overall, scores, time, prompt hash). ExifTool rewrites only the tags named, so darktable's
  history and every other property stay as they were.
- The user's own rating (the library of ``aimeta web``, :meth:`SidecarWriter.write_user`) goes
  to ``xmp:Rating`` (-1 for a reject), ``xmp:Label`` (Green for a pick, Red for a reject) and
  ``aimeta:UserRating``; while a sidecar holds ``aimeta:UserRating``, ``aimeta rate`` writes its
  own properties and keywords but leaves ``xmp:Rating`` to the user.
- One stay-open ExifTool process serves a whole run. Each line sent to it is one argument, so
  every value is stripped of control characters first; a path holding a newline is written by
  a one-off ExifTool process with list arguments instead. Never a shell.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import tempfile
import threading
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import exiftool

from aimeta.errors import ExifToolFailed, ExifToolMissing, OutputError
from aimeta.files import MAX_XMP_BYTES
from aimeta.rating.answer import CRITERIA, Rating, strip_control

SIDECAR_STYLES = ("darktable", "adobe")
# The namespace of aimeta's properties, as aimeta.config declares it to ExifTool.
AIMETA_NAMESPACE = "https://github.com/aimeta/aimeta/ns/rating/1.0/"
_MODEL_PROPERTY = f"{{{AIMETA_NAMESPACE}}}Model"
# Criteria with their own tag in aimeta.config (all of them are also in Scores as JSON).
CRITERION_TAGS = {
    "composition": "Composition",
    "lighting": "Lighting",
    "colour": "Colour",
    "sharpness": "Sharpness",
    "impact": "Impact",
    "creativity": "Creativity",
}
_READ_TAGS = (
    "-XMP-dc:Subject",
    "-XMP-lr:HierarchicalSubject",
    "-XMP-aimeta:Model",
    "-XMP-xmp:Rating",
    "-XMP-xmp:Label",
    "-XMP-aimeta:Overall",
    "-XMP-aimeta:CullStars",
    "-XMP-aimeta:CullDecision",
    "-XMP-aimeta:UserRating",
)
_WARM_UP_TIME = "2000-01-01T00:00:00Z"


def config_path() -> Path:
    """The ExifTool config file defining the aimeta namespace (shipped in the package)."""
    return Path(str(resources.files("aimeta.rating").joinpath("aimeta.config")))


def existing_sidecar(image: Path) -> Path | None:
    """The sidecar that belongs to ``image`` if there is one (darktable style looked at first)."""
    for candidate in (image.with_name(image.name + ".xmp"), image.with_suffix(".xmp")):
        if candidate.is_file():
            return candidate
    return None


def sidecar_model(sidecar: Path) -> str | None:
    """The model aimeta last rated with, as ``sidecar`` records it (None: none), read without
    ExifTool: ~0.4 ms a sidecar instead of ~4.6 ms through the stay-open process, which adds
    up when a re-run over a darktable folder checks a sidecar per image.

    Raises OSError when the file cannot be read and ValueError when it is not XMP this reader
    takes on (not well-formed, over MAX_XMP_BYTES, or declaring a DOCTYPE: no entities are
    expanded): ExifTool decides those.
    """
    with sidecar.open("rb") as handle:
        data = handle.read(MAX_XMP_BYTES + 1)
    if len(data) > MAX_XMP_BYTES or b"<!DOCTYPE" in data:
        raise ValueError(f"{sidecar} is not plain XMP")
    try:
        # The property is an element or, in RDF's short form, an attribute; matched by its
        # namespace, whatever prefix the file gives it.
        for _event, element in ElementTree.iterparse(io.BytesIO(data)):
            if element.tag == _MODEL_PROPERTY:
                return element.text or ""
            if _MODEL_PROPERTY in element.attrib:
                return element.attrib[_MODEL_PROPERTY]
    except ElementTree.ParseError as exc:
        raise ValueError(f"{sidecar}: {exc}") from exc
    return None


def sidecar_path(image: Path, style: str = "darktable") -> Path:
    """Where the rating of ``image`` goes: the existing sidecar, else a new one in ``style``."""
    if style not in SIDECAR_STYLES:
        raise OutputError(f"unknown sidecar style {style!r}; use darktable or adobe")
    found = existing_sidecar(image)
    if found is not None:
        return found
    if style == "adobe":
        return image.with_suffix(".xmp")
    return image.with_name(image.name + ".xmp")


@dataclass(frozen=True, slots=True)
class SidecarInfo:
    """What a sidecar already says: its keywords and the model aimeta last rated it with."""

    subjects: tuple[str, ...]
    hierarchical: tuple[str, ...]
    model: str | None
    rating: int | None
    label: str | None = None
    overall: int | None = None  # aimeta's rating (``aimeta rate``)
    cull_stars: int | None = None  # aimeta's stars (``aimeta cull``)
    cull_decision: str | None = None
    user_stars: int | None = None  # aimeta:UserRating: set in the library of `aimeta web`

    @property
    def user_rating(self) -> bool:
        """True when ``xmp:Rating`` holds a rating that aimeta did not write (0 and no rating
        count as unset; -1, "rejected", counts as set)."""
        if self.user_stars:  # rated or rejected by hand in the library
            return True
        if self.rating is None or self.rating == 0:
            return False
        written_by_rate = self.model is not None and self.rating == self.overall
        return not written_by_rate and self.rating != self.cull_stars


@dataclass(frozen=True, slots=True)
class SidecarRating:
    """Everything written for one image."""

    rating: Rating
    model: str
    prompt_hash: str
    rated_at: str  # ISO 8601 UTC, e.g. 2024-05-01T12:00:00Z


class SidecarWriter:
    """Reads and writes sidecars through one stay-open ExifTool process (thread-safe).

    ``SidecarWriter()`` starts the process at once. With ``start=False`` the program is only
    looked up (ExifToolMissing at once when it is not there) and :meth:`start` launches it
    later, in the thread that is to own it: pyexiftool ties the process to the thread that
    starts it (on Linux the process ends when that thread ends).
    """

    def __init__(self, executable: str = "exiftool", *, start: bool = True) -> None:
        self.executable = executable
        self._config = str(config_path())
        self._lock = threading.Lock()
        try:
            self._tool = exiftool.ExifTool(
                executable=executable, common_args=[], config_file=self._config, encoding="utf-8"
            )
        except FileNotFoundError as exc:  # pyexiftool looks the program up here
            raise ExifToolMissing() from exc
        if start:
            self.start()

    def start(self) -> None:
        """Launch the ExifTool process (nothing to do when it runs already)."""
        with self._lock:
            if self._tool.running:
                return
            try:
                self._tool.run()
            except FileNotFoundError as exc:
                raise ExifToolMissing() from exc
            except Exception as exc:  # pyexiftool raises several kinds at start-up
                raise ExifToolFailed(f"cannot start ExifTool ({self.executable}): {exc}") from exc

    def warm_up(self) -> None:
        """Write a rating into a sidecar in a temporary folder, so that ExifTool has loaded
        what writing one needs (about 0.4 s, otherwise spent on the first real write)."""
        sample = SidecarRating(
            Rating({c.key: 5 for c in CRITERIA}, 3, ("aimeta",)), "aimeta", "", _WARM_UP_TIME
        )
        with (
            tempfile.TemporaryDirectory(prefix="aimeta-warm-up-") as folder,
            contextlib.suppress(OutputError, ExifToolFailed),
        ):
            self.write(Path(folder) / "warm-up.jpg", sample)

    def close(self) -> None:
        with self._lock:
            # A dead process needs no goodbye.
            if self._tool.running:
                with contextlib.suppress(Exception):
                    self._tool.terminate()

    def __enter__(self) -> SidecarWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def read(self, sidecar: Path) -> SidecarInfo | None:
        """The keywords, rating and aimeta model of ``sidecar``; None when it is missing or
        not readable as XMP."""
        if not sidecar.is_file():
            return None
        output, status, _errors = self._execute(["-j", "-n", *_READ_TAGS, str(sidecar)])
        try:
            data = json.loads(output)[0] if status == 0 and output.strip() else None
        except (ValueError, IndexError):
            data = None
        if not isinstance(data, dict):
            return None
        return _info(data)

    def write(self, image: Path, result: SidecarRating, style: str = "darktable") -> Path:
        """Write ``result`` into the sidecar of ``image``; return the sidecar's path.

        Raise OutputError when ExifTool cannot write it (the old sidecar is then unchanged)."""
        target = sidecar_path(image, style)
        # ExifTool refuses to write while its temporary file exists: a run killed during a
        # write leaves one behind.
        stale = target.with_name(target.name + "_exiftool_tmp")
        if stale.is_file():
            stale.unlink()
        before = self.read(target) if target.exists() else None
        arguments = ["-overwrite_original", *_rating_args(result, before), str(target)]
        output, status, errors = self._execute(arguments)
        if status != 0 or "error" in errors.lower():
            reason = _first_line(errors) or _first_line(output) or f"exit status {status}"
            raise OutputError(f"cannot write the sidecar {target}: {reason}")
        return target

    def write_cull(
        self,
        image: Path,
        mark: CullMark,
        style: str = "darktable",
        *,
        overwrite: bool = False,
        user_rated: bool = False,
    ) -> tuple[Path, bool]:
        """Write ``mark`` into the sidecar of ``image``: the stars only where the user has
        set no rating -- in the sidecar, or ``user_rated`` (the library's own record) -- unless
        ``overwrite``; the label and the keywords under
        CULL_KEYWORD_PARENT (those of an earlier cull replaced). Return the sidecar's path
        and whether the stars were written. Raise OutputError as :meth:`write` does."""
        target = sidecar_path(image, style)
        stale = target.with_name(target.name + "_exiftool_tmp")
        if stale.is_file():
            stale.unlink()
        before = self.read(target) if target.exists() else None
        rate_it = overwrite or not (user_rated or (before is not None and before.user_rating))
        arguments = ["-overwrite_original", *_cull_args(mark, before, rate_it), str(target)]
        output, status, errors = self._execute(arguments)
        if status != 0 or "error" in errors.lower():
            reason = _first_line(errors) or _first_line(output) or f"exit status {status}"
            raise OutputError(f"cannot write the sidecar {target}: {reason}")
        return target, rate_it

    def write_user(
        self, image: Path, stars: int | None, pick: int, rated_at: str, style: str = "darktable"
    ) -> Path:
        """Write the user's rating of ``image``: ``stars`` (0-5, None: unrated) and ``pick``
        (1 pick, -1 reject, 0 neither) into its sidecar; return the sidecar's path."""
        target = sidecar_path(image, style)
        stale = target.with_name(target.name + "_exiftool_tmp")
        if stale.is_file():
            stale.unlink()
        value = -1 if pick == -1 else (stars or 0)
        label = {1: "Green", -1: "Red"}.get(pick, "")
        arguments = [
            "-overwrite_original",
            f"-XMP-xmp:Rating={value}",
            f"-XMP-xmp:Label={label}",
            f"-XMP-aimeta:UserRating={value}",
            f"-XMP-aimeta:UserRatedAt={_exif_time(rated_at)}",
            str(target),
        ]
        output, status, errors = self._execute(arguments)
        if status != 0 or "error" in errors.lower():
            reason = _first_line(errors) or _first_line(output) or f"exit status {status}"
            raise OutputError(f"cannot write the sidecar {target}: {reason}")
        return target

    def _execute(self, arguments: list[str]) -> tuple[str, int, str]:
        if any(re.search(r"[\x00-\x1f]", arg) for arg in arguments):
            return self._execute_once(arguments)
        with self._lock:
            try:
                output = self._tool.execute(*arguments)
            except Exception as exc:
                raise ExifToolFailed(f"ExifTool stopped: {exc}") from exc
            status = self._tool.last_status
            return str(output), int(status if status is not None else 0), self._tool.last_stderr

    def _execute_once(self, arguments: list[str]) -> tuple[str, int, str]:
        """One ExifTool process for arguments that stay-open mode cannot carry (newlines)."""
        try:
            done = subprocess.run(
                [self.executable, "-config", self._config, *arguments],
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=120,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ExifToolMissing() from exc
        except subprocess.TimeoutExpired as exc:
            raise ExifToolFailed("ExifTool took longer than 120 s") from exc
        return done.stdout, done.returncode, done.stderr


@dataclass(frozen=True, slots=True)
class CullMark:
    """What ``aimeta cull`` writes for one image."""

    stars: int
    decision: str  # pick | reject | keep
    reasons: tuple[str, ...]


# The parent of cull's keywords in lr:hierarchicalSubject ("aimeta cull|pick", "...|blurry").
CULL_KEYWORD_PARENT = "aimeta cull"
# Colour labels (xmp:Label) that Lightroom shows and darktable imports as colour labels.
CULL_LABELS = {"pick": "Green", "reject": "Red"}


def _cull_args(mark: CullMark, before: SidecarInfo | None, rate_it: bool) -> list[str]:
    arguments = []
    if rate_it:
        arguments.append(f"-XMP-xmp:Rating={mark.stars}")
    label = CULL_LABELS.get(mark.decision)
    previous = CULL_LABELS.get(before.cull_decision or "") if before else None
    if label is not None:
        arguments.append(f"-XMP-xmp:Label={label}")
    elif previous is not None and before is not None and before.label == previous:
        arguments.append("-XMP-xmp:Label=")  # our old label; the user's own stays
    prefix = CULL_KEYWORD_PARENT + "|"
    for old in before.hierarchical if before else ():
        if old.startswith(prefix):
            arguments.append(f"-XMP-lr:HierarchicalSubject-={old}")
    named = (mark.decision,) if mark.decision in CULL_LABELS else ()
    words = [_clean(word) for word in (*named, *mark.reasons)]
    have_subjects = {word.casefold() for word in (before.subjects if before else ())}
    for word in words:
        arguments.append(f"-XMP-lr:HierarchicalSubject+={prefix}{word}")
        if word.casefold() not in have_subjects:
            arguments.append(f"-XMP-dc:Subject+={word}")
            have_subjects.add(word.casefold())
    arguments += [
        f"-XMP-aimeta:CullStars={mark.stars}",
        f"-XMP-aimeta:CullDecision={_clean(mark.decision)}",
    ]
    return arguments


def _rating_args(result: SidecarRating, before: SidecarInfo | None) -> list[str]:
    rating = result.rating
    have_subjects = {word.casefold() for word in (before.subjects if before else ())}
    have_hierarchical = {word.casefold() for word in (before.hierarchical if before else ())}
    # The user's own rating wins: a sidecar rated in the library keeps its xmp:Rating.
    user_rated = before is not None and before.user_stars is not None
    arguments = [] if user_rated else [f"-XMP-xmp:Rating={rating.overall}"]
    for keyword in rating.keywords:
        word = _clean(keyword)
        if word.casefold() not in have_subjects:
            arguments.append(f"-XMP-dc:Subject+={word}")
            have_subjects.add(word.casefold())
        if word.casefold() not in have_hierarchical:
            arguments.append(f"-XMP-lr:HierarchicalSubject+={word}")
            have_hierarchical.add(word.casefold())
    arguments += [
        f"-XMP-aimeta:Model={_clean(result.model)}",
        f"-XMP-aimeta:Overall={rating.overall}",
        f"-XMP-aimeta:Scores={json.dumps(rating.scores, sort_keys=True)}",
        f"-XMP-aimeta:RatedAt={_exif_time(result.rated_at)}",
        f"-XMP-aimeta:PromptHash={_clean(result.prompt_hash)}",
    ]
    for key, score in rating.scores.items():
        tag = CRITERION_TAGS.get(key)
        if tag:
            arguments.append(f"-XMP-aimeta:{tag}={score}")
    return arguments


def _info(data: dict[str, Any]) -> SidecarInfo:
    def as_tuple(value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        return tuple(str(item) for item in items)

    def as_int(value: Any) -> int | None:
        return int(value) if isinstance(value, int | float) else None

    def as_text(value: Any) -> str | None:
        return str(value) if value is not None else None

    return SidecarInfo(
        subjects=as_tuple(data.get("Subject")),
        hierarchical=as_tuple(data.get("HierarchicalSubject")),
        model=as_text(data.get("Model")),
        rating=as_int(data.get("Rating")),
        label=as_text(data.get("Label")),
        overall=as_int(data.get("Overall")),
        cull_stars=as_int(data.get("CullStars")),
        cull_decision=as_text(data.get("CullDecision")),
        user_stars=as_int(data.get("UserRating")),
    )


def _clean(value: str) -> str:
    return strip_control(value).strip()


def _exif_time(iso: str) -> str:
    # 2024-05-01T12:00:00Z -> 2024:05:01 12:00:00Z, the form ExifTool reads for XMP dates.
    return iso.replace("-", ":", 2).replace("T", " ")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""
