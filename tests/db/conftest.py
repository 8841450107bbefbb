"""Test set-up for the database tests: their helper module (old_databases) is importable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
