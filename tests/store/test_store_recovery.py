"""Crash safety and ownership: start-up cleans what a crash left; one process owns a data root."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isula_build.errors import FailedPrecondition
from isula_build.store import Store
from store_tars import add_image, diff_id, directory, file, make_tar

BASE = make_tar(directory("etc"), file("etc/os-release", b"NAME=test\n"))
APP = make_tar(file("app", b"app"))
ORPHAN_HEX = "ab" * 32


def test_reopen_after_crash_removes_leftovers(data_root: Path) -> None:
    with Store(data_root) as s:
        record = add_image(s, [BASE], ["kept"])
        layout = s.layout
    # What a crash can leave: temporaries, a blob renamed in but never committed, a layer dir of
    # no image, and an extraction interrupted in tmp/.
    (layout.tmp / "layer-123").write_bytes(b"half a layer")
    (layout.tmp / f"extract-{diff_id(BASE)[7:]}-x" / "etc").mkdir(parents=True)
    (layout.blob(ORPHAN_HEX)).write_bytes(b"uncommitted blob")
    (layout.blobs / "not-a-digest").write_bytes(b"junk")
    (layout.layer(ORPHAN_HEX) / "half").mkdir(parents=True)
    with Store(data_root) as s:
        assert os.listdir(layout.tmp) == []
        assert set(os.listdir(layout.blobs)) == {record.id, diff_id(BASE)[7:]}
        assert os.listdir(layout.layers) == []
        assert s.lookup("kept") == record
        assert (s.layer_dir(diff_id(BASE)) / "etc" / "os-release").read_bytes() == b"NAME=test\n"


WRITER_SCRIPT = """
import sys
from pathlib import Path
from isula_build.store import Store
store = Store(Path(sys.argv[1]))
with store.writer() as w:
    print("ready", flush=True)
    w.put_layer(sys.stdin.buffer)
"""


def test_killed_writer_leaves_nothing_after_restart(data_root: Path) -> None:
    with Store(data_root) as s:
        record = add_image(s, [BASE], ["kept"])
        layout = s.layout
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(data_root)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.stdin.write(APP[:1024])
    proc.stdin.flush()
    deadline = time.monotonic() + 10
    while not os.listdir(layout.tmp) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.listdir(layout.tmp), "the writer should have a temporary file by now"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(data_root) as s:
        assert os.listdir(layout.tmp) == []
        assert set(os.listdir(layout.blobs)) == {record.id, diff_id(BASE)[7:]}
        assert s.list_images() == [record]


SECOND_STORE_SCRIPT = """
import sys
from pathlib import Path
from isula_build.errors import FailedPrecondition
from isula_build.store import Store
try:
    Store(Path(sys.argv[1]))
except FailedPrecondition as exc:
    print(exc)
    sys.exit(3)
print("opened")
"""


def test_second_store_on_the_same_data_root_is_refused(store: Store, data_root: Path) -> None:
    add_image(store, [BASE], ["kept"])
    p = subprocess.run([sys.executable, "-c", SECOND_STORE_SCRIPT, str(data_root)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 3, p.stdout + p.stderr
    assert "in use by another process" in p.stdout
    assert str(data_root / "storage") in p.stdout
    # the refused store changed nothing
    assert store.lookup("kept").names == ("kept:latest",)
    # and within one process a second open file is refused as well (flock is per open file)
    with pytest.raises(FailedPrecondition, match="in use"):
        Store(data_root)


def test_lock_is_released_on_close(data_root: Path) -> None:
    Store(data_root).close()
    p = subprocess.run([sys.executable, "-c", SECOND_STORE_SCRIPT, str(data_root)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "opened", p.stdout + p.stderr
