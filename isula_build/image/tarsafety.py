"""Tar safety: refuse layer tars whose entries would escape the directory they are extracted into.

Two parts:
- `EntryChecker` judges one entry at a time (name, type, link target) and remembers the symlinks
  the archive has made so far. It returns the entry's normalized path, which is what an
  extractor must use, so that checking and extracting can never disagree on where a file goes.
- `TarStreamChecker` parses tar headers from bytes fed to it in chunks of any size, as they pass
  through a copy, so a layer is checked in the same single pass that hashes and stores it. It
  understands ustar, pax ('x', 'g') and GNU long name/link ('L', 'K') headers the way Python's
  tarfile (the extractor) does, and refuses what it does not understand.

Rules (a violation raises InvalidArgument naming the entry):
- a path must be relative and must not climb out of the root with "..";
- a hard link target must be relative and stay inside the root (the extractor resolves it on
  the host);
- a symlink target is only data, never followed while extracting: absolute targets (/bin/busybox)
  and relative ones climbing above the root (../../../../bin) both resolve inside the container,
  where the kernel takes "/.." for "/";
- no entry or hard link target may pass through a symlink made earlier in the same archive, nor
  through a hard link to such a symlink (os.link of a symlink makes a second symlink);
- the stream must be a complete tar: valid header checksums, no truncation, an end-of-archive block.
"""

from __future__ import annotations

import tarfile
from zlib import adler32

from isula_build.errors import InvalidArgument

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
# pax and GNU long-name payloads are metadata; anything larger is an attack, not a file name.
MAX_META_SIZE = 1 << 20

_REGULAR = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}
# Entries without data, whatever their size field says; headers whose payload describes the
# next entry. (Public with parse_header, parse_pax and padding: builder/tarmerge.py walks
# snapshot tars by the same reading.)
HEADER_ONLY_TYPES = {tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                     tarfile.DIRTYPE, tarfile.FIFOTYPE}
META_TYPES = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
              tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}


def _unsafe(name: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f'unsafe layer tar entry "{name}": {reason}')


def _resolve(parts: list[str], start: list[str]) -> list[str] | None:
    """Lexically resolves parts from directory start; None when it climbs above the root."""
    if not start and "" not in parts and "." not in parts and ".." not in parts:
        return parts  # already normal: most names of most layers
    stack = list(start)
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return None
            stack.pop()
        else:
            stack.append(part)
    return stack


class EntryChecker:
    """Checks entries of one tar in order; remembers the symlinks made so far."""

    def __init__(self) -> None:
        self._symlinks: set[str] = set()

    def _through_symlink(self, parts: list[str]) -> str | None:
        if not self._symlinks:
            return None
        prefix = ""
        for part in parts[:-1]:
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self._symlinks:
                return prefix
        return None

    def check(self, name: str, type_: bytes, linkname: str = "") -> str:
        """Returns the normalized relative path of the entry ("" for the root itself)."""
        if not name:
            raise _unsafe(name, "empty path")
        if name.startswith("/"):
            raise _unsafe(name, "absolute path")
        if "\0" in name or "\0" in linkname:
            raise _unsafe(name, "NUL in path")
        parts = _resolve(name.split("/"), [])
        if parts is None:
            raise _unsafe(name, 'path climbs out of the layer root with ".."')
        if not parts and type_ != tarfile.DIRTYPE:
            raise _unsafe(name, "only a directory may stand for the layer root")
        via = self._through_symlink(parts)
        if via is not None:
            raise _unsafe(name, f'path passes through the symlink "{via}" made earlier in the tar')
        if type_ == tarfile.LNKTYPE:
            self._check_hardlink(name, linkname)
        elif type_ == tarfile.SYMTYPE and not linkname:
            raise _unsafe(name, "symlink without a target")
        elif type_ not in _REGULAR and type_ not in HEADER_ONLY_TYPES:
            raise _unsafe(name, f"unsupported entry type {type_!r}")
        path = "/".join(parts)
        if type_ == tarfile.SYMTYPE or (type_ == tarfile.LNKTYPE
                                        and self.hardlink_target(linkname) in self._symlinks):
            self._symlinks.add(path)
        else:
            self._symlinks.discard(path)
        return path

    @staticmethod
    def hardlink_target(linkname: str) -> str:
        """The normalized path of a hard link target that check() accepted."""
        target = _resolve(linkname.split("/"), [])
        assert target, "check() refuses empty or escaping hard link targets"
        return "/".join(target)

    def _check_hardlink(self, name: str, linkname: str) -> None:
        if not linkname:
            raise _unsafe(name, "hard link without a target")
        if linkname.startswith("/"):
            raise _unsafe(name, f'hard link target "{linkname}" is absolute')
        target = _resolve(linkname.split("/"), [])
        if not target:
            raise _unsafe(name, f'hard link target "{linkname}" climbs out of the layer root')
        via = self._through_symlink(target)
        if via is not None:
            raise _unsafe(name, f'hard link target "{linkname}" passes through the symlink "{via}"')


def parse_pax(data: bytes) -> dict[str, str]:
    """Records "<len> <key>=<value>\\n" of a pax extended header."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:  # NUL padding after the last record
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidArgument("corrupt tar: malformed pax header record") from None
        record = data[space + 1:pos + length]
        if space < 0 or length <= 0 or pos + length > len(data) or not record.endswith(b"\n") \
                or b"=" not in record:
            raise InvalidArgument("corrupt tar: malformed pax header record")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def padding(size: int) -> int:
    return -size % BLOCK


_HIGH_BYTES = bytes(range(128))  # deleted by translate(): what remains are the bytes >= 0x80
_GNU_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE)


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    if field[-1] == 0:   # the common form, "%0*o\0": what the general path below reads too
        try:
            return int(field[:-1], 8)
        except ValueError:
            pass
    if field[0] in (0o200, 0o377):  # GNU base-256 for values too large for octal (as tarfile)
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if field[0] == 0o377 else value
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


_LINK_TYPES = (tarfile.LNKTYPE, tarfile.SYMTYPE)


# (name, type, size, linkname): linkname is "" unless a hard or symbolic link (no other entry
# uses it). A plain tuple: one is made per header.
_Header = tuple[str, bytes, int, str]


def _byte_sum(block: bytes) -> int:
    """sum(block) of a 512-byte block, five times faster: the low 16 bits of Adler-32 are one
    plus the byte sum modulo 65521, and the sum of 256 bytes (at most 65280) is below it."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def parse_header(block: bytes) -> _Header:
    """The fields of a 512-byte header this checker needs, read exactly as tarfile reads them
    (TarInfo.frombuf), but without the fields it does not need: headers are the hot path of
    layers made of many small files. ValueError for a bad checksum or number."""
    stored = _number(block[148:156])
    unsigned = _byte_sum(block) - sum(block[148:156]) + 8 * 0x20
    if stored != unsigned:
        high = len(block[:148].translate(None, _HIGH_BYTES)) + len(block[156:].translate(None, _HIGH_BYTES))
        if stored != unsigned - 256 * high:  # some old tars sum signed chars
            raise ValueError("bad checksum")
    end = block.find(0, 0, 100)
    name = block[:end if end >= 0 else 100].decode("utf-8", "surrogateescape")
    type_ = block[156:157]
    if type_ == tarfile.AREGTYPE and name.endswith("/"):
        type_ = tarfile.DIRTYPE
    if type_ == tarfile.DIRTYPE:
        name = name.rstrip("/")
    if block[345] and type_ not in _GNU_TYPES:  # a ustar prefix
        name = _text(block[345:500]) + "/" + name
    linkname = _text(block[157:257]) if type_ in _LINK_TYPES else ""
    return name, type_, _number(block[124:136]), linkname


class TarStreamChecker:
    """Incremental tar header parser: feed() chunks as they pass, then finish()."""

    def __init__(self) -> None:
        self.entries = EntryChecker()
        self.offset = 0  # bytes consumed so far
        self._header = bytearray()  # a header block split across chunks
        self._skip = 0  # data (and padding) bytes still to pass over
        self._meta = bytearray()  # payload of a pax / long-name header being collected
        self._meta_left = 0
        self._meta_type = b""
        self._meta_pad = 0
        self._local: dict[str, str] = {}  # pax 'x' and GNU L/K values for the next entry
        self._global: dict[str, str] = {}  # pax 'g' values for all later entries
        self._headers_seen = 0
        self._ended = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end and not self._ended:  # tarfile, the extractor, stops at the first zero block
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
            elif self._meta_left:
                step = min(self._meta_left, end - pos)
                self._meta += view[pos:pos + step]
                self._meta_left -= step
                pos += step
                if not self._meta_left:
                    self._finish_meta()
            elif not self._header and end - pos >= BLOCK:
                pos = self._whole_entries(view, pos, end)
            else:
                step = min(BLOCK - len(self._header), end - pos)
                self._header += view[pos:pos + step]
                pos += step
                if len(self._header) == BLOCK:
                    block = bytes(self._header)
                    self._header.clear()
                    self._on_header(block, self.offset + pos - BLOCK)
        self.offset += end

    def _whole_entries(self, view: memoryview, pos: int, end: int) -> int:
        """Takes the headers at pos, and the data and extended headers that follow them, as
        long as they lie whole in view (the common case: one loop, no partial state); returns
        where it stopped, for feed to go on from."""
        start = self.offset
        while end - pos >= BLOCK and not self._ended:
            self._on_header(bytes(view[pos:pos + BLOCK]), start + pos)
            pos += BLOCK
            if self._meta_left:
                if end - pos < self._meta_left:
                    break
                meta = bytes(view[pos:pos + self._meta_left])
                pos += self._meta_left
                self._meta_left = 0
                self._finish_meta(meta)
            if self._skip:
                if end - pos < self._skip:
                    break
                pos += self._skip
                self._skip = 0
        return pos

    def finish(self) -> None:
        """Raises InvalidArgument unless the stream was one complete tar archive."""
        if self._ended:
            return
        if self.offset == 0:
            raise InvalidArgument("not a tar archive: the stream is empty")
        raise InvalidArgument(f"truncated tar archive: the stream ends at byte {self.offset} "
                              "before the end-of-archive marker")

    def _on_header(self, block: bytes, header_offset: int) -> None:
        if block == _ZERO_BLOCK:
            if self._local:
                raise InvalidArgument("corrupt tar: extended header without an entry")
            self._ended = True
            return
        try:
            name, type_, size, linkname = parse_header(block)
        except (ValueError, tarfile.HeaderError):
            if self._headers_seen == 0:
                raise InvalidArgument("not a tar archive (bad header checksum)") from None
            raise InvalidArgument(f"corrupt tar: bad header at byte {header_offset}") from None
        self._headers_seen += 1
        if type_ in META_TYPES:
            if size > MAX_META_SIZE:
                raise InvalidArgument(f"corrupt tar: {size}-byte extended header")
            self._meta.clear()
            self._meta_type = type_
            self._meta_left = size
            self._meta_pad = padding(size)
            if not size:
                self._finish_meta()
            return
        if type_ == tarfile.GNUTYPE_SPARSE:
            raise _unsafe(name, "sparse files are not supported")
        self._on_entry(name, type_, size, linkname)

    def _finish_meta(self, whole: bytes | None = None) -> None:
        """The extended header's payload is complete: `whole`, or what _meta gathered."""
        data = whole if whole is not None else bytes(self._meta)
        self._meta.clear()
        self._skip = self._meta_pad
        if self._meta_type == tarfile.GNUTYPE_LONGNAME:
            self._local["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif self._meta_type == tarfile.GNUTYPE_LONGLINK:
            self._local["linkpath"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif self._meta_type == tarfile.XGLTYPE:
            self._global.update(parse_pax(data))
        else:
            self._local.update(parse_pax(data))

    def _on_entry(self, name: str, type_: bytes, size: int, linkname: str) -> None:
        if self._global or self._local:
            fields = {**self._global, **self._local}
            self._local = {}
            if any(key.startswith("GNU.sparse.") for key in fields):
                raise _unsafe(name, "sparse files are not supported")
            if "path" in fields:
                name = fields["path"].rstrip("/")
            linkname = fields.get("linkpath", linkname)
            if "size" in fields:
                try:
                    size = int(fields["size"])
                except ValueError:
                    raise _unsafe(name, "malformed pax size") from None
        if size < 0:
            raise _unsafe(name, "negative size")
        self.entries.check(name, type_, linkname)
        if type_ not in HEADER_ONLY_TYPES:
            self._skip = size + padding(size)
