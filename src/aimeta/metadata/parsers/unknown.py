"""The last resort: generation-like text that no format parser recognised.

Such a file gets generator ``unknown`` with every text field kept in ``raw``, so nothing is
lost and ``aimeta ingest --reparse`` can read it once a parser for its format exists. Files
whose text is only about the file itself (ImageMagick ``date:create``, a camera's
Make/Model/Software, a photo editor's XMP) stay generator ``none``.

The evidence is :func:`aimeta.metadata.readers.fields.generation_evidence`: a field whose name
only image generators write (``GENERATION_FIELDS``), a value naming an image generator, or a
value using at least two generation words. dump uses the same evidence to decide whether to
look for stealth infotext, and ingest the same field names to report damaged JSON.
"""

from __future__ import annotations

from collections.abc import Mapping

from aimeta.metadata.parsers.info import ParserInfo
from aimeta.metadata.readers.fields import generation_evidence
from aimeta.metadata.record import Record


def parse(fields: Mapping[str, str]) -> Record | None:
    """Generation-like fields no other parser took -> ``unknown`` record keeping them all."""
    reason = generation_evidence(fields)
    if reason is None:
        return None
    return Record(
        generator="unknown",
        raw=dict(fields),
        warnings=[f"no parser recognised this metadata: {reason}"],
    )


PARSER = ParserInfo(
    name="unknown",
    label="Unrecognised generation metadata",
    containers="any text field that looks like generation metadata, kept raw for re-parsing",
    parse=parse,
)
