"""The local web page of ``aimeta web`` (FastAPI; install with ``pip install 'aimeta[web]'``)."""
