"""Peak memory of a separated save and load of an app image with one large layer.

    python tests/separated/measure_rss.py WORKDIR SIZE_MIB

Builds a store (base, lib, app whose own layer holds SIZE_MIB of half-compressible data), then
saves and loads the app in this process, printing one JSON line with the peak resident set size
(VmHWM) after each phase. Memory must not grow with SIZE_MIB: everything streams.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from isula_build.separated.load import load_separated, plan_load  # noqa: E402
from isula_build.separated.save import plan_save, save_separated  # noqa: E402
from isula_build.store import Store  # noqa: E402
from separated_helpers import build_images, no_cancel  # noqa: E402

CHUNK = 1 << 20


class _Data(io.RawIOBase):
    """size bytes, each MiB half random and half a repeated pattern (neither gzip's best case
    nor its worst)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, CHUNK)
        if n <= 0:
            return 0
        half = n // 2
        buffer[:half] = os.urandom(half)
        buffer[half:n] = (b"isula-build " * (n // 12 + 1))[:n - half]
        self._left -= n
        return n


def big_layer(path: Path, size: int) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("data/big.bin")
        info.size, info.mode, info.mtime = size, 0o644, 1_600_000_000
        tar.addfile(info, io.BufferedReader(_Data(size), CHUNK))


def peak_mib() -> float:
    """VmHWM, the peak resident size of this process's own memory. (ru_maxrss would not do:
    Linux carries it over exec from the parent that spawned us, so under a large pytest
    process it reports the parent's peak.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    work, size = Path(sys.argv[1]), int(sys.argv[2]) << 20
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, float] = {}
    with Store(work / "store") as store:
        images = build_images(store, work)
        layer = work / "big-layer.tar"
        big_layer(layer, size)
        with store.writer() as writer, open(layer, "rb") as stream:
            config = json.loads(store.config_bytes(images.lib.id))
            record = writer.put_layer(stream)
            layer.unlink()
            config["rootfs"]["diff_ids"] = [l.diff_id for l in images.lib.layers] + [record.diff_id]
            writer.put_config(json.dumps(config).encode())
            writer.commit(["isb-test-big:1"])
        result["setup_peak_mib"] = peak_mib()
        start = time.monotonic()
        plan = plan_save(store, "isb-test-base:1", "isb-test-lib:1", ["isb-test-big:1"], None)
        save_separated(store, plan, work / "Images", lambda line: None, no_cancel)
        result["save_seconds"] = time.monotonic() - start
        result["save_peak_mib"] = peak_mib()
    with Store(work / "empty-store") as fresh:
        start = time.monotonic()
        plan = plan_load(work / "Images", "isb-test-big:1", None, None)
        load_separated(fresh, plan, False, lambda line: None, no_cancel)
        result["load_seconds"] = time.monotonic() - start
        result["load_peak_mib"] = peak_mib()
        result["loaded_layer_bytes"] = fresh.lookup("isb-test-big:1").layers[-1].size
    result["app_tarball_bytes"] = sum(p.stat().st_size for p in (work / "Images").glob("*_app_*"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
