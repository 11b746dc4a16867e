"""Separated save and load stream: peak memory does not grow with the size of the image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "measure_rss.py"


def measure(work: Path, size_mib: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(SCRIPT), str(work), str(size_mib)], check=True,
                         capture_output=True, text=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_peak_memory_is_flat_from_16_to_256_mib(tmp_path: Path) -> None:
    small = measure(tmp_path / "small", 16)
    large = measure(tmp_path / "large", 256)
    assert large["loaded_layer_bytes"] > 256 << 20
    for phase in ("save_peak_mib", "load_peak_mib"):
        # 240 MiB more data may cost a few buffers more, never the data itself.
        assert large[phase] - small[phase] < 16, (phase, small, large)
        assert large[phase] < 150, (phase, large)
