"""aimeta: read, normalise and search image generation metadata; rate images with a local LLM."""

__version__ = "0.2.0.dev0"
