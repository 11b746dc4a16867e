"""Makes the harness modules of this directory importable by the tests and by regen_expected.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
