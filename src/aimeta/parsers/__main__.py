"""``python -m aimeta.parsers``: print the supported-formats table for the README."""

from aimeta.parsers import supported_formats_markdown

print(supported_formats_markdown(), end="")
