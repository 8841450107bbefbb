"""The local web page of ``aimeta web`` (FastAPI, imported only when that command runs)."""
