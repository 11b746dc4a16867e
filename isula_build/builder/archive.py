"""ADD of a local tar archive: recognised by content and extracted into the destination.

An archive is a file that tarfile can read a first entry of, plain or compressed with gzip,
bzip2 or xz (told by magic bytes, whatever the file is called). Every entry is confined to the
destination directory (paths and hard link targets resolved inside it), and keeps the archive's
owners and modes, even with --chown, as docker does; --chown only owns the directories made on
the way.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import Literal

from isula_build.builder.filecopy import lstat_or_none, remove_entry, set_xattr, write_new_file
from isula_build.builder.rootpath import make_dirs_in_root, resolve_in_root
from isula_build.errors import InvalidArgument
from isula_build.image.compression import BZIP2, GZIP, HEAD_SIZE, XZ, detect_compression
from isula_build.store.nofollow import open_dir_nofollow

# tarfile's stream modes ("r|gz" …) for what it can decompress itself; a plain tar has "".
# tarfile's stream modes for what it can decompress (zstd it cannot: such a file is no archive).
TarReadMode = Literal["r|", "r|gz", "r|bz2", "r|xz"]
_TARFILE_MODES: dict[str | None, TarReadMode] = {None: "r|", GZIP: "r|gz", BZIP2: "r|bz2",
                                                 XZ: "r|xz"}
_DEVICE_KINDS = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
                 tarfile.FIFOTYPE: stat.S_IFIFO}


def archive_compression(path: Path) -> TarReadMode | None:
    """The tarfile mode that reads `path` ("r|", "r|gz", "r|bz2", "r|xz") when it is a tar
    archive (by content), else None: the file is then copied as it is."""
    with open(path, "rb") as f:
        compression = _TARFILE_MODES.get(detect_compression(f.read(HEAD_SIZE)))
    if compression is None:
        return None  # zstd: tarfile cannot read it, so it is no archive to ADD
    try:
        with tarfile.open(path, compression) as tar:
            if tar.next() is None:
                return None
    except (tarfile.TarError, OSError, EOFError):
        return None
    return compression


def extract_archive(archive: Path, compression: TarReadMode, dest: Path, uid: int,
                    gid: int) -> None:
    """Extracts the tar archive into the existing directory `dest`, every entry confined to
    it; directories made for entries' parents get the owner uid:gid."""
    dirs: list[tuple[Path, int, float]] = []
    with tarfile.open(archive, compression) as tar:
        for member in tar:
            name = posixpath.normpath("/" + member.name).lstrip("/")
            if not name:
                continue
            parent = make_dirs_in_root(dest, posixpath.dirname(name), uid=uid, gid=gid)
            target = parent / posixpath.basename(name)
            # Checked with docker: extracted entries keep the archive's owners and modes,
            # even with --chown (which only applies to the directories made on the way).
            mode = member.mode & 0o7777
            existing = lstat_or_none(target)
            if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
                remove_entry(target)
                existing = None
            if member.isdir():
                if existing is None:
                    os.mkdir(target, 0o700)
                dirs.append((target, mode, member.mtime))
            elif member.isreg():
                fin = tar.extractfile(member)
                assert fin is not None
                write_new_file(fin, target)
            elif member.issym():
                os.symlink(member.linkname, target)
            elif member.islnk():
                link_name = posixpath.normpath("/" + member.linkname).lstrip("/")
                source = resolve_in_root(dest, link_name, follow_last=False)
                st = lstat_or_none(source)
                if st is None or stat.S_ISDIR(st.st_mode):
                    raise InvalidArgument(f"ADD: bad hard link {member.name} -> {member.linkname}")
                os.link(source, target, follow_symlinks=False)  # a symlink is linked as one
                continue  # a hard link shares the metadata of its target
            elif member.type in _DEVICE_KINDS:
                os.mknod(target, _DEVICE_KINDS[member.type] | 0o600,
                         os.makedev(member.devmajor, member.devminor))
            else:
                continue
            os.chown(target, member.uid, member.gid, follow_symlinks=False)
            if not member.issym():
                os.chmod(target, mode)
                for key, value in member.pax_headers.items():
                    if key.startswith("SCHILY.xattr."):
                        set_xattr(target, key[len("SCHILY.xattr."):],
                                  value.encode("utf-8", "surrogateescape"))
            if not member.isdir():
                os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)
    # Directory modes and times last: writing entries into a directory changes its mtime,
    # and a read-only mode would stop the entries from being written. A later entry may have
    # replaced the directory or a parent with a symlink: reached without following any.
    for path, mode, mtime in reversed(dirs):
        with open_dir_nofollow(dest, str(path.relative_to(dest))) as fd:
            if fd is not None:
                os.chmod(fd, mode)
                os.utime(fd, (mtime, mtime))
