"""Civitai: references found in metadata (refs) and the Civitai API client (client)."""
