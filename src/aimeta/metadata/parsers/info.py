"""What each format module exposes as ``PARSER`` (kept apart from the registry, which imports
every format module, so that the formats can import it without a cycle)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aimeta.metadata.record import Record


@dataclass(frozen=True)
class ParserInfo:
    """One format: ``name`` is the generator id stored in the database.

    ``source_fields``: ``parse`` returns ``None`` unless at least one of these fields is
    present, so :func:`parse_fields` does not ask it then (most files carry one or two fields
    and most parsers would only look and say no); ``None`` means any field can matter.
    """

    name: str
    label: str
    containers: str
    parse: Callable[[Mapping[str, str]], Record | None]
    source_fields: frozenset[str] | None = None
