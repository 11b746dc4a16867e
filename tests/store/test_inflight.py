"""The in-flight records: temporaries beside outputs outside the data root are recorded, and a
daemon's start removes what one killed midway left, never a file that took the name since."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from isula_build.store import inflight


def test_new_dir_is_recorded_and_its_tree_removed_at_start_up(outdir: Path,
                                                             inflight_dir: Path) -> None:
    record = inflight.new_dir(outdir / "Images")
    assert record.path.parent == outdir and record.path.name.startswith(".Images.")
    st = record.path.stat()
    (document,) = [json.loads(p.read_text()) for p in inflight_dir.iterdir()]
    assert document == {"path": str(record.path), "kind": "dir", "dev": st.st_dev,
                        "ino": st.st_ino}
    (record.path / "app.tar.gz").write_bytes(b"half a tarball")
    (record.path / "sub").mkdir()
    (record.path / "sub" / "x").write_bytes(b"x")
    (record.path / "link").symlink_to(outdir)
    # The daemon is killed here; the next one starts.
    assert inflight.start(inflight_dir) == [record.path]
    assert list(outdir.iterdir()) == [] and list(inflight_dir.iterdir()) == []


def test_forget_drops_the_record(outdir: Path, inflight_dir: Path) -> None:
    record = inflight.new_dir(outdir / "Images")
    os.rename(record.path, outdir / "Images")
    record.forget()
    assert list(inflight_dir.iterdir()) == []
    assert inflight.start(inflight_dir) == []
    assert list(outdir.iterdir()) == [outdir / "Images"]


def test_start_up_never_removes_what_took_the_name(outdir: Path, inflight_dir: Path) -> None:
    fd, file_record = inflight.new_file(outdir / "a.tar")
    os.close(fd)
    replacement = outdir / "replacement"  # made while ours exists: another inode
    replacement.write_bytes(b"a user's file")
    os.replace(replacement, file_record.path)
    directory = inflight.new_dir(outdir / "Images").path
    directory.rmdir()
    directory.symlink_to(outdir)  # a link where our directory was: never followed
    assert inflight.start(inflight_dir) == []
    assert file_record.path.read_bytes() == b"a user's file"
    assert directory.is_symlink()
    assert list(inflight_dir.iterdir()) == []


def test_start_up_with_records_of_a_name_only(outdir: Path, inflight_dir: Path) -> None:
    # Killed between the first record (the name) and the second (the inode): only an empty
    # file or directory can be ours, since nothing is written before the inode is recorded.
    empty, full, empty_dir = outdir / ".a.1.tmp", outdir / ".b.2.tmp", outdir / ".c.3.tmp"
    empty.touch()
    full.write_bytes(b"data")
    empty_dir.mkdir()
    for n, (path, kind) in enumerate([(empty, "file"), (full, "file"), (empty_dir, "dir"),
                                      (outdir / ".gone.tmp", "file")]):
        (inflight_dir / f"{n}.json").write_text(json.dumps({"path": str(path), "kind": kind}))
    (inflight_dir / ".0.json.abc").write_text("a record's own temporary")
    (inflight_dir / "bad.json").write_text("{not json")
    assert sorted(inflight.start(inflight_dir)) == sorted([empty, empty_dir])
    assert list(outdir.iterdir()) == [full]
    assert list(inflight_dir.iterdir()) == []


def test_replace_file(outdir: Path, inflight_dir: Path) -> None:
    target = outdir / "auth.json"
    target.write_bytes(b"old")
    inflight.replace_file(target, b"new", 0o400)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o400
    assert list(outdir.iterdir()) == [target] and list(inflight_dir.iterdir()) == []


def test_replace_file_killed_midway_is_cleaned_at_start_up(outdir: Path, tmp_path: Path) -> None:
    inflight_dir = tmp_path / "inflight"
    target = outdir / "isula-build.pub"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from isula_build.store import inflight
        inflight.start(Path({str(inflight_dir)!r}))
        real_fsync = os.fsync
        def fsync(fd):
            # Killed while the new content reaches the disk, before the rename.
            if os.readlink(f"/proc/self/fd/{{fd}}").startswith({str(outdir)!r}):
                os.kill(os.getpid(), signal.SIGKILL)
            real_fsync(fd)
        os.fsync = fsync
        inflight.replace_file(Path({str(target)!r}), b"key", 0o400)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    (left,) = outdir.iterdir()
    assert left.name.startswith(".isula-build.pub.")
    try:
        assert inflight.start(inflight_dir) == [left]
    finally:
        inflight.stop()
    assert list(outdir.iterdir()) == [] and list(inflight_dir.iterdir()) == []
