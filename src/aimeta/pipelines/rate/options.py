"""What a rating run is given and what it gives back: RateOptions, RateResult, check_options."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimeta.rating.render import CONVERTERS
from aimeta.rating.sidecar import SIDECAR_STYLES
from aimeta.settings import Settings

# The stage named in events and in the errors table.
STAGE = "rate"


@dataclass(frozen=True)
class RateOptions:
    """What to rate and where the answers go (the rest comes from Settings)."""

    folder: Path
    xmp: bool = True
    csv: bool = True
    csv_path: Path | None = None
    recursive: bool = False
    skip_existing: bool = True
    dry_run: bool = False
    preview_dir: Path | None = None
    # Only these files of the folder (``aimeta watch --rate``: the images that just landed);
    # None: every image of the folder.
    paths: tuple[Path, ...] | None = None
    # Record the ratings in the database only (no sidecar, no CSV): how `aimeta cull` gets
    # the absolute scores it calibrates with.
    database_only: bool = False


@dataclass
class RateResult:
    """The summary of one run."""

    model: str = ""
    api_urls: tuple[str, ...] = ()
    converter: str = ""
    found: int = 0
    rated: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    overall: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    csv_path: Path | None = None
    csv_rows: int = 0
    repaired: int = 0
    stopped: bool = False
    aborted: str | None = None
    dry_run: bool = False
    to_rate: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.overall) if self.overall else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.overall) if self.overall else None

    @property
    def histogram(self) -> dict[int, int]:
        """Images per overall star count, 1 to 5."""
        counts = Counter(self.overall)
        return {stars: counts.get(stars, 0) for stars in range(1, 6)}

    @property
    def failure_reasons(self) -> dict[str, int]:
        """How many images failed for each reason."""
        return dict(Counter(reason for _path, reason in self.failures).most_common())

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output and the web page."""
        return {
            "model": self.model,
            "api_urls": list(self.api_urls),
            "converter": self.converter,
            "found": self.found,
            "rated": self.rated,
            "skipped": self.skipped,
            "failed": self.failed,
            "failures": [{"path": p, "reason": r} for p, r in self.failures],
            "mean": self.mean,
            "median": self.median,
            "histogram": self.histogram,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 3),
            "csv_path": str(self.csv_path) if self.csv_path else None,
            "csv_rows": self.csv_rows,
            "repaired": self.repaired,
            "stopped": self.stopped,
            "aborted": self.aborted,
            "dry_run": self.dry_run,
        }


def check_options(settings: Settings, options: RateOptions) -> dict[str, str]:
    """Problems with the settings and options, as ``{field: message}``; empty when all fit."""
    problems: dict[str, str] = {}
    if not options.folder.is_dir():
        problems["folder"] = f"{options.folder} is not a folder"
    if not options.xmp and not options.csv and not options.database_only:
        problems["xmp"] = "at least one output is needed: XMP sidecars or the CSV"
    if not settings.api_urls:
        problems["api_urls"] = "no model server URL given"
    for url in settings.api_urls:
        if not url.startswith(("http://", "https://")):
            problems["api_urls"] = f"{url!r} is not an http(s) URL"
    if settings.workers < 1 or settings.workers > 64:
        problems["workers"] = "workers must be between 1 and 64"
    if not 64 <= settings.size <= 8192:
        problems["size"] = "size must be between 64 and 8192 pixels"
    if not 1 <= settings.quality <= 100:
        problems["quality"] = "quality must be between 1 and 100"
    if not 0.0 <= settings.temperature <= 2.0:
        problems["temperature"] = "temperature must be between 0 and 2"
    if settings.converter not in CONVERTERS:
        problems["converter"] = f"converter must be one of {', '.join(CONVERTERS)}"
    if settings.sidecar not in SIDECAR_STYLES:
        problems["sidecar"] = f"sidecar must be one of {', '.join(SIDECAR_STYLES)}"
    if settings.max_tokens < 16:
        problems["max_tokens"] = "max_tokens must be at least 16"
    if settings.max_keywords < 0:
        problems["max_keywords"] = "max_keywords cannot be negative"
    for name in ("system_prompt", "user_prompt"):
        given = getattr(settings, name)
        if given is not None and not Path(given).is_file():
            problems[name] = f"prompt file {given} not found"
    return problems
