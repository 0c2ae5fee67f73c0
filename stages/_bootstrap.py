"""Put this checkout's `lottery/` first on sys.path (also inside `dvc exp run --temp`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
