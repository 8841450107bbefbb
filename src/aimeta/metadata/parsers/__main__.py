"""``python -m aimeta.metadata.parsers``: print the supported-formats table for the README."""

from aimeta.metadata.parsers import supported_formats_markdown

print(supported_formats_markdown(), end="")
