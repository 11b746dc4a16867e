"""Registry benchmark, side by side with skopeo (not a test: nothing asserted).

Two one-layer images, pushed to and pulled from Debian's docker-registry on 127.0.0.1 over plain
HTTP: "files", ~200 MB of real files copied from the host's /usr/share and /usr/lib (text,
binaries, libraries: compressible as a distribution image is), and "random", SIZE MB of random
bytes (incompressible). Per image, in one run:
- push gzip: ours (`push_image`: store → gzip with ISA-L on every CPU → chunked upload) vs
  `skopeo copy oci:DIR docker://…` of the same image from an OCI layout with the same
  uncompressed layer (skopeo compresses with pgzip); a fresh registry each run;
- second push of the same image to the same repository (the blob is found by HEAD);
- push zstd: ours (`--compression zstd`, OCI format) beside the gzip figures;
- pull gzip and pull zstd: ours (`pull_image`: download, decompress, verify both digests, tar
  checks, store) vs `skopeo copy docker://… oci:DIR` (download and write the blob as is) of
  the very image ours pushed.
Targets (issue 15): pull ≤ 1.0× skopeo, push ≤ 0.8× skopeo (gzip); zstd figures beside them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isula_build.distribution.pull import pull_image  # noqa: E402
from isula_build.distribution.push import push_image  # noqa: E402
from isula_build.image.compressionspec import parse_compression  # noqa: E402
from isula_build.registry.settings import Registries, RegistrySettings  # noqa: E402
from isula_build.store import Store  # noqa: E402
from isula_build.transports.copy import copy_image  # noqa: E402
from isula_build.transports.oci_archive import OciArchiveWriter  # noqa: E402
from isula_build.transports.rootfs_tarball import ImportSource  # noqa: E402
from isula_build.transports.store import StoreDestination, StoreSource  # noqa: E402
from tests.registry.servers import Registry, free_port  # noqa: E402

FILES_MB = 200
TREES = ("/usr/share", "/usr/lib")


class Endpoint:
    """A store under root and registry settings with one insecure registry (in-process: the
    benchmark measures the registry path, not gRPC)."""

    def __init__(self, root: Path, insecure: str) -> None:
        (root / "etc").mkdir(parents=True, exist_ok=True)
        self.settings = RegistrySettings(
            config_dir=root / "etc", data_root=root / "data",
            registries=Registries(insecure=(insecure,) if insecure else ()))
        self.store = Store(root / "data")


def make_files_layer(path: Path, size_mb: int) -> None:
    """A tar of regular files from the host, half from each tree, up to size_mb in all."""
    share = (size_mb << 20) // len(TREES)
    with tarfile.open(path, "w") as tar:
        for top in TREES:
            taken = 0
            for dirpath, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(files):
                    file = os.path.join(dirpath, name)
                    if os.path.islink(file) or not os.path.isfile(file):
                        continue
                    size = os.path.getsize(file)
                    if taken + size > share:
                        continue
                    try:
                        tar.add(file, recursive=False)
                    except OSError:
                        continue
                    taken += size
                if taken >= share - (1 << 20):
                    break


def make_random_layer(path: Path, size_mb: int) -> None:
    data = path.parent / "payload"
    data.mkdir()
    with open(data / "random.bin", "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(1 << 20))
    with tarfile.open(path, "w") as tar:
        tar.add(data, arcname="payload")
    shutil.rmtree(data)


def timed(action: Callable[[], object]) -> float:
    os.sync()  # the writeback of what ran before (a push writes the registry's blobs) is not this one's
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", *args], check=True, stdout=subprocess.DEVNULL)


def quiet(line: str) -> None:
    pass


def bench_image(root: Path, layer: Path, runs: int) -> dict[str, list[float]]:
    pusher = Endpoint(root / "pusher", "")
    with ImportSource(layer) as src, StoreDestination(pusher.store, ["bench:1"]) as dst:
        copy_image(src, dst, quiet)
    layout = root / "layout"
    archive = root / "image.oci.tar"
    with OciArchiveWriter(archive) as writer, \
            StoreSource(pusher.store, pusher.store.lookup("bench:1")) as src, \
            writer.image(["bench:1"]) as dst:
        copy_image(src, dst, quiet)
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout)
    archive.unlink()
    pusher.store.close()
    zstd = parse_compression("zstd")

    times: dict[str, list[float]] = {key: [] for key in (
        "push", "skopeo push", "second push", "push zstd", "pull", "skopeo pull", "pull zstd",
        "skopeo pull zstd")}
    for run in range(runs):
        # A fresh registry and blob-info cache each run: skopeo's own cache
        # (/var/lib/containers/cache) then knows no location of the layer in this registry,
        # and ours knows nothing at all, so both compress and upload.
        registry = Registry(root / f"registry{run}", free_port())
        registry.start()
        host = registry.host
        try:
            shutil.rmtree(root / "pusher" / "data" / "registry", ignore_errors=True)
            pusher = Endpoint(root / "pusher", host)
            gzip_name, zstd_name = f"{host}/ours:1", f"{host}/ours-zstd:1"
            def push() -> str:
                return push_image(pusher.store, pusher.settings, "bench:1", gzip_name, "docker",
                                  quiet)
            times["push"].append(timed(push))
            times["second push"].append(timed(push))
            times["push zstd"].append(timed(lambda: push_image(
                pusher.store, pusher.settings, "bench:1", zstd_name, "oci", quiet,
                compression=zstd)))
            pusher.store.close()
            times["skopeo push"].append(timed(lambda: skopeo(
                "copy", "--dest-tls-verify=false", f"oci:{layout}:bench:1",
                f"docker://{host}/skopeo:1")))
            for name, ours, theirs in ((gzip_name, "pull", "skopeo pull"),
                                       (zstd_name, "pull zstd", "skopeo pull zstd")):
                puller = Endpoint(root / f"puller{run}", host)
                times[ours].append(timed(lambda: pull_image(puller.store, puller.settings, name,
                                                            quiet)))
                puller.store.close()
                shutil.rmtree(root / f"puller{run}")
                target = root / f"pulled{run}"
                times[theirs].append(timed(lambda: skopeo(
                    "copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{target}:b")))
                shutil.rmtree(target)
        finally:
            registry.stop()
            shutil.rmtree(root / f"registry{run}", ignore_errors=True)
    shutil.rmtree(root / "pusher")
    shutil.rmtree(layout)
    return times


def report(title: str, size: int, times: dict[str, list[float]]) -> None:
    med = {key: statistics.median(values) for key, values in times.items()}
    print(f"\n{title}: one layer of {size / 1e6:.0f} MB, {len(times['push'])} runs, medians (s)")
    print("runs: " + "; ".join(f"{key} " + " ".join(f"{t:.2f}" for t in values)
                               for key, values in times.items()))
    rows = [("push gzip", "push", "skopeo push", "target <= 0.8x"),
            ("pull gzip", "pull", "skopeo pull", "target <= 1.0x"),
            ("pull zstd", "pull zstd", "skopeo pull zstd", "same zstd blob"),
            ("push zstd", "push zstd", "skopeo push", "vs skopeo's gzip push"),
            ("second push", "second push", "push", "vs our first push")]
    for label, ours, other, note in rows:
        print(f"{label:12} ours {med[ours]:6.2f}   {other:16} {med[other]:6.2f}   "
              f"ratio {med[ours] / med[other]:.2f}x ({note})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500, help="size of the random image")
    parser.add_argument("--files-mb", type=int, default=FILES_MB, help="size of the files image")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="isb-bench-registry-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        for title, make, size_mb in (("files", make_files_layer, args.files_mb),
                                     ("random", make_random_layer, args.size_mb)):
            layer = root / f"{title}.tar"
            make(layer, size_mb)
            size = layer.stat().st_size
            times = bench_image(root / title, layer, args.runs)
            layer.unlink()
            report(title, size, times)


if __name__ == "__main__":
    main()
