"""What a cull run is given and gives back: CullOptions, CullResult, check_options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aimeta.rating import calibrate, groups

STAGE = "cull"
Level = Literal["debug", "info", "warning", "error"]
CSV_COLUMNS = ("path", "group", "rank", "group_size", "stars", "pick", "reject", "reasons")


@dataclass(frozen=True)
class CullOptions:
    """What to cull and how (the model, servers and rendering come from Settings)."""

    folder: Path
    xmp: bool = True
    csv: bool = True
    recursive: bool = False
    dry_run: bool = False
    overwrite: bool = False
    group_window: float = groups.DEFAULT_WINDOW_S
    hash_distance: int = groups.DEFAULT_HASH_DISTANCE
    group_size: int = 6
    distribution: tuple[float, ...] = calibrate.DEFAULT_DISTRIBUTION
    rank_prompt: Path | None = None


@dataclass
class CullResult:
    """The summary of one run."""

    model: str = ""
    found: int = 0
    groups: list[list[str]] = field(default_factory=list)  # paths, groups of two or more
    ranked: int = 0  # groups ranked by this run
    reused: int = 0  # groups whose ranking was recorded before
    failed: list[tuple[str, str]] = field(default_factory=list)  # (first path, reason)
    requests: int = 0  # ranking requests sent by this run
    rate_requests: int = 0  # absolute-score requests sent by this run (through rate)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by path
    csv_path: Path | None = None
    stars_kept: int = 0  # sidecars whose user rating was kept
    dry_run: bool = False
    stopped: bool = False

    def count(self, decision: str) -> int:
        return sum(1 for d in self.decisions.values() if d["decision"] == decision)


def check_options(options: CullOptions) -> dict[str, str]:
    """Problems with ``options`` as ``{field: message}``."""
    problems = {}
    if not options.folder.is_dir():
        problems["folder"] = f"{options.folder} is not a folder"
    if not 2 <= options.group_size <= 16:
        problems["group_size"] = "group size must be between 2 and 16"
    if not 0 <= options.hash_distance <= 64:
        problems["hash_distance"] = "hash distance must be between 0 and 64 bits"
    if options.group_window < 0:
        problems["group_window"] = "the group window cannot be negative"
    if options.rank_prompt is not None and not options.rank_prompt.is_file():
        problems["rank_prompt"] = f"{options.rank_prompt} is not a file"
    return problems
