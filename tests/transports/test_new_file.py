"""Outputs appear only complete and leave nothing behind otherwise: the unnamed O_TMPFILE path,
and the recorded fallback for filesystems without it."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from isula_build.errors import AlreadyExists
from isula_build.store import inflight
from isula_build.transports import newfile
from isula_build.transports.archive import open_archive
from isula_build.transports.copy import copy_image
from isula_build.transports.docker_archive import DockerArchiveWriter
from isula_build.transports.newfile import NewFile
from transport_helpers import Image, docker_archive_members, make_layer, write_tar


@pytest.fixture
def no_tmpfile(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem without O_TMPFILE (NFS, FUSE, vfat): open refuses the flag."""
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def copy_one_image(archive: DockerArchiveWriter, tmp_path: Path, log) -> None:
    image = Image([make_layer({"etc/hostname": b"box\n"})], ["isb-test-new:1"])
    ((source, names),) = open_archive(write_tar(tmp_path / "src.tar",
                                                docker_archive_members([image])))
    with source, archive.image(names) as dst:
        copy_image(source, dst, log)


def write(file: NewFile, data: bytes) -> None:
    assert os.write(file.fd, data) == len(data)


def records_in(directory: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.iterdir())]


# --------------------------------------------------------------------------- unnamed (O_TMPFILE)

def test_complete_file_appears_with_mode_0600(outdir: Path, inflight_dir: Path) -> None:
    target = outdir / "a.tar"
    file = NewFile(target)
    write(file, b"hello")
    # While it is written it has no name at all: a kill now leaves nothing.
    assert list(outdir.iterdir()) == []
    assert records_in(inflight_dir) == []
    file.commit()
    assert list(outdir.iterdir()) == [target]
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_abort_leaves_nothing(outdir: Path) -> None:
    file = NewFile(outdir / "a.tar")
    write(file, b"partial")
    file.abort()
    file.abort()  # idempotent
    assert list(outdir.iterdir()) == []


def test_target_made_meanwhile_is_already_exists_and_kept(outdir: Path) -> None:
    target = outdir / "a.tar"
    file = NewFile(target)
    write(file, b"ours")
    target.write_bytes(b"someone else's")
    with pytest.raises(AlreadyExists, match=f'output file already exist: "{target}"'):
        file.commit()
    assert target.read_bytes() == b"someone else's"
    assert list(outdir.iterdir()) == [target]


def test_archive_writer_failure_leaves_nothing(outdir: Path, tmp_path: Path, log) -> None:
    with pytest.raises(RuntimeError):
        with DockerArchiveWriter(outdir / "a.tar") as archive:
            copy_one_image(archive, tmp_path, log)
            raise RuntimeError("cancelled")
    assert list(outdir.iterdir()) == []


def test_archive_writer_target_made_meanwhile(outdir: Path, tmp_path: Path, log) -> None:
    target = outdir / "a.tar"
    with pytest.raises(AlreadyExists):
        with DockerArchiveWriter(target) as archive:
            copy_one_image(archive, tmp_path, log)
            target.write_bytes(b"x")
    assert target.read_bytes() == b"x"
    assert list(outdir.iterdir()) == [target]


def test_unprivileged_link_falls_back_to_a_named_file(outdir: Path, inflight_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Linking a descriptor without CAP_DAC_READ_SEARCH before Linux 6.10 fails with ENOENT.
    monkeypatch.setattr(newfile, "_linkat", lambda fd, dir_fd, name: errno.ENOENT)
    file = NewFile(outdir / "a.tar")
    assert [p.name.startswith(".a.tar.") for p in outdir.iterdir()] == [True]
    file.abort()
    assert list(outdir.iterdir()) == []


# ------------------------------------------------------------------- named fallback, recorded

def test_fallback_records_the_temporary_and_forgets_it_when_done(
        outdir: Path, inflight_dir: Path, no_tmpfile: None) -> None:
    target = outdir / "a.tar"
    file = NewFile(target)
    (tmp,) = outdir.iterdir()
    assert tmp.name.startswith(".a.tar.") and tmp.name.endswith(".tmp")
    st = tmp.stat()
    assert records_in(inflight_dir) == [{"path": str(tmp), "kind": "file",
                                         "dev": st.st_dev, "ino": st.st_ino}]
    write(file, b"hello")
    file.commit()
    assert list(outdir.iterdir()) == [target]
    assert target.read_bytes() == b"hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert list(inflight_dir.iterdir()) == []


def test_fallback_abort_and_existing_target(outdir: Path, inflight_dir: Path,
                                           no_tmpfile: None) -> None:
    file = NewFile(outdir / "a.tar")
    file.abort()
    assert list(outdir.iterdir()) == [] and list(inflight_dir.iterdir()) == []
    target = outdir / "b.tar"
    file = NewFile(target)
    target.write_bytes(b"someone else's")
    with pytest.raises(AlreadyExists):
        file.commit()
    assert list(outdir.iterdir()) == [target] and target.read_bytes() == b"someone else's"
    assert list(inflight_dir.iterdir()) == []


def test_fallback_without_hard_links_renames(outdir: Path, inflight_dir: Path, no_tmpfile: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src, dst, **kwargs):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))  # vfat

    monkeypatch.setattr(os, "link", no_link)
    target = outdir / "a.tar"
    file = NewFile(target)
    write(file, b"hello")
    file.commit()
    assert list(outdir.iterdir()) == [target] and target.read_bytes() == b"hello"
    assert list(inflight_dir.iterdir()) == []


def test_start_up_removes_what_a_killed_writer_left(outdir: Path, inflight_dir: Path,
                                                   no_tmpfile: None) -> None:
    file = NewFile(outdir / "a.tar")
    write(file, b"half an archive")
    (tmp,) = outdir.iterdir()
    os.close(file.fd)  # the daemon is killed: no commit, no abort
    # The next daemon's start-up.
    assert inflight.start(inflight_dir) == [tmp]
    assert list(outdir.iterdir()) == []
    assert list(inflight_dir.iterdir()) == []
