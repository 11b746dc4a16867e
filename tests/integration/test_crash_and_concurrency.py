"""The store survives a daemon killed mid-load and many clients at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .helpers import make_rootfs_tar, random_file, store_snapshot


def test_sigkill_during_load_leaves_consistent_store(daemon, client, busybox_image, tmp_path):
    # An image with one large layer, saved and removed, so that loading it takes a while.
    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    random_file(rootfs / "data" / "big.bin", 400 * 1024 * 1024)
    big_tar = tmp_path / "big-rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(big_tar), "."], check=True)
    client("ctr-img", "import", str(big_tar), "big:1")
    archive = tmp_path / "big.tar"
    client("ctr-img", "save", "big:1", "-o", str(archive))
    client("ctr-img", "rm", "big:1")
    before = (client("ctr-img", "images").stdout, store_snapshot(daemon.data_root))

    loader = subprocess.Popen(
        [sys.executable, "-m", "isula_build.cli.main", "--host", daemon.host, "ctr-img", "load", "-i", str(archive)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    tmp_dir = daemon.data_root / "storage" / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(tmp_dir.iterdir()):
        time.sleep(0.005)
    assert any(tmp_dir.iterdir()), "the load never started writing"
    daemon.stop(signal.SIGKILL)
    loader.wait(30)
    assert loader.returncode != 0

    daemon.start()
    after = (client("ctr-img", "images").stdout, store_snapshot(daemon.data_root))
    assert after == before, "the half-loaded image must be gone and nothing half-written left"
    # The store still works: the same archive loads completely now.
    assert "Loaded image as" in client("ctr-img", "load", "-i", str(archive)).stdout


def test_many_clients_at_once(daemon, client, busybox_image, tmp_path):
    tars = [make_rootfs_tar(tmp_path / f"c{i}.tar", {"i.txt": str(i).encode()}) for i in range(8)]

    def work(i: int) -> None:
        client("ctr-img", "import", str(tars[i]), f"conc:{i}")
        client("ctr-img", "tag", "busybox:latest", f"bbtag:{i}")
        client("ctr-img", "save", f"conc:{i}", "busybox:latest", "-o", str(tmp_path / f"s{i}.tar"))
        if i % 2:
            client("ctr-img", "rm", f"conc:{i}", f"bbtag:{i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))

    listing = client("ctr-img", "images").stdout
    rows = [l.split() for l in listing.splitlines() if l.split()[:1] in (["conc"], ["bbtag"])]
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        [("conc", str(i)) for i in range(0, 8, 2)] + [("bbtag", str(i)) for i in range(0, 8, 2)])
    # After a restart (which garbage-collects) every listed image still saves completely.
    daemon.restart()
    for i in range(0, 8, 2):
        client("ctr-img", "save", f"conc:{i}", "-o", str(tmp_path / f"after{i}.tar"))
    assert store_snapshot(daemon.data_root)["tmp"] == []
