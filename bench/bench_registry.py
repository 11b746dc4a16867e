"""Registry benchmark, side by side with skopeo (not a test: nothing asserted).

One image with a single layer of SIZE MB (half random bytes, half compressible text), pushed to
and pulled from Debian's docker-registry on 127.0.0.1 over plain HTTP:
- push: ours (`push_image`: store → gzip on every CPU → chunked upload) vs `skopeo copy
  oci:DIR docker://…` of the same image from an OCI layout with the same uncompressed layer
  (skopeo compresses with pgzip); a fresh registry each run.
- second push of the same image to the same repository: ours (the blob is found by HEAD from
  the remembered compressed digest) vs the first push.
- pull: ours (`pull_image`: download, gunzip, verify both digests, store) vs `skopeo copy
  docker://… oci:DIR` (download and write the blob as is) of the image ours pushed.
Targets (the issue): push and pull ≤ 1.0× skopeo, second push ≤ 0.2× of the first.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from isula_build.distribution.pull import pull_image  # noqa: E402
from isula_build.distribution.push import push_image  # noqa: E402
from isula_build.registry.settings import Registries, RegistrySettings  # noqa: E402
from isula_build.store import Store  # noqa: E402
from isula_build.transports.copy import copy_image  # noqa: E402
from isula_build.transports.oci_archive import OciArchiveWriter  # noqa: E402
from isula_build.transports.rootfs_tarball import ImportSource  # noqa: E402
from isula_build.transports.store import StoreDestination, StoreSource  # noqa: E402
from tests.registry.servers import Registry, free_port  # noqa: E402

class Endpoint:
    """A store under root and registry settings with one insecure registry (in-process: the
    benchmark measures the registry path, not gRPC)."""

    def __init__(self, root: Path, insecure: str) -> None:
        (root / "etc").mkdir(parents=True, exist_ok=True)
        self.settings = RegistrySettings(
            config_dir=root / "etc", data_root=root / "data",
            registries=Registries(insecure=(insecure,) if insecure else ()))
        self.store = Store(root / "data")


def make_layer(path: Path, size_mb: int) -> None:
    half = size_mb * (1 << 20) // 2
    data = path.parent / "payload"
    data.mkdir()
    with open(data / "random.bin", "wb") as f:
        for _ in range(half >> 20):
            f.write(os.urandom(1 << 20))
    words = b" ".join(b"%d-%x" % (i, i * 2654435761 % (1 << 32)) for i in range(200_000))
    with open(data / "text.txt", "wb") as f:
        written = 0
        while written < half:
            f.write(words)
            written += len(words)
    with tarfile.open(path, "w") as tar:
        tar.add(data, arcname="payload")
    shutil.rmtree(data)


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="isb-bench-registry-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        layer = root / "layer.tar"
        make_layer(layer, args.size_mb)
        pusher = Endpoint(root / "pusher", "")
        with ImportSource(layer) as src, StoreDestination(pusher.store, ["bench:1"]) as dst:
            copy_image(src, dst, lambda line: None)
        layout = root / "layout"
        archive = root / "image.oci.tar"
        with OciArchiveWriter(archive) as writer, \
                StoreSource(pusher.store, pusher.store.lookup("bench:1")) as src, \
                writer.image(["bench:1"]) as dst:
            copy_image(src, dst, lambda line: None)
        layout.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(layout)
        archive.unlink()
        layer.unlink()
        pusher.store.close()

        ours_push, skopeo_push, second_push, ours_pull, skopeo_pull = [], [], [], [], []
        for run in range(args.runs):
            # A fresh registry and blob-info cache each run: skopeo's own cache
            # (/var/lib/containers/cache) then knows no location of the layer in this registry,
            # and ours knows nothing at all, so both compress and upload.
            registry = Registry(root / f"registry{run}", free_port())
            registry.start()
            host = registry.host
            try:
                shutil.rmtree(root / "pusher" / "data" / "registry", ignore_errors=True)
                pusher = Endpoint(root / "pusher", host)
                ours = f"{host}/ours:1"
                def push() -> str:
                    return push_image(pusher.store, pusher.settings, "bench:1", ours, "docker",
                                      lambda line: None)
                ours_push.append(timed(push))
                second_push.append(timed(push))
                pusher.store.close()
                skopeo_push.append(timed(lambda: skopeo(
                    "copy", "--dest-tls-verify=false", f"oci:{layout}:bench:1",
                    f"docker://{host}/skopeo:1")))
                puller = Endpoint(root / f"puller{run}", host)
                ours_pull.append(timed(lambda: pull_image(puller.store, puller.settings, ours,
                                                          lambda line: None)))
                puller.store.close()
                shutil.rmtree(root / f"puller{run}")
                target = root / f"pulled{run}"
                skopeo_pull.append(timed(lambda: skopeo(
                    "copy", "--src-tls-verify=false", f"docker://{ours}", f"oci:{target}:bench:1")))
                shutil.rmtree(target)
            finally:
                registry.stop()
                shutil.rmtree(root / f"registry{run}", ignore_errors=True)

    med = statistics.median
    print(f"image: one layer of {args.size_mb} MB, {args.runs} runs, medians")
    print("runs (s): push ours " + " ".join(f"{t:.2f}" for t in ours_push) + " / skopeo "
          + " ".join(f"{t:.2f}" for t in skopeo_push) + "; pull ours "
          + " ".join(f"{t:.2f}" for t in ours_pull) + " / skopeo "
          + " ".join(f"{t:.2f}" for t in skopeo_pull))
    print(f"push:        ours {med(ours_push):6.2f} s   skopeo {med(skopeo_push):6.2f} s   "
          f"ratio {med(ours_push) / med(skopeo_push):.2f}x (target <= 1.0x)")
    print(f"second push: ours {med(second_push):6.2f} s   first  {med(ours_push):6.2f} s   "
          f"ratio {med(second_push) / med(ours_push):.2f}x (target <= 0.2x)")
    print(f"pull:        ours {med(ours_pull):6.2f} s   skopeo {med(skopeo_pull):6.2f} s   "
          f"ratio {med(ours_pull) / med(skopeo_pull):.2f}x (target <= 1.0x)")


if __name__ == "__main__":
    main()
