"""Downloads the http(s) sources of ADD.

Docker names the file after the Content-Disposition header's filename or, without one, after the
last component of the URL path; it gives the file mode 0600 and the Last-Modified time as mtime,
and never extracts it, even when it is an archive.  The body streams to a temporary file so a
large download never sits in memory; size and time are bounded so a slow or endless server cannot
hold a build forever.
"""

from __future__ import annotations

import email.message
import email.utils
import hashlib
import os
import posixpath
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from isula_build.builder.filecopy import lstat_or_none, remove_entry, write_new_file
from isula_build.dockerfile.sources import is_url
from isula_build.errors import InvalidArgument, ResourceExhausted

MODE = 0o600                     # what docker gives a downloaded file (before --chmod)
DEFAULT_LIMIT = 8 << 30          # 8 GiB: more than any sane ADD, less than a full disk
DEFAULT_TIMEOUT = 600.0          # seconds for the whole download
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Fetched:
    path: Path                   # the downloaded body, a temporary file the caller removes
    filename: str                # the name docker gives the file in a directory destination
    mtime: float | None          # from Last-Modified, None when the server sent none
    sha256: str                  # hex digest of the body
    size: int


def _filename(url: str, disposition: str | None) -> str:
    if disposition:
        msg = email.message.Message()
        msg["Content-Disposition"] = disposition
        name = msg.get_filename()
        if name:
            # A server must not choose a path: keep only the last component.
            name = posixpath.basename(name.replace("\\", "/"))
            if name not in ("", ".", ".."):
                return name
    name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    return name if name not in ("", ".", "..") else "index"


def _last_modified(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def fetch_url(url: str, into_dir: Path, *, limit: int = DEFAULT_LIMIT,
              timeout: float = DEFAULT_TIMEOUT) -> Fetched:
    """Downloads `url` into a new temporary file in `into_dir`."""
    if not is_url(url):
        raise InvalidArgument(f"not an http(s) URL: {url}")
    deadline = time.monotonic() + timeout
    fd, tmp_name = tempfile.mkstemp(prefix="add-url-", dir=into_dir)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        # The socket timeout bounds each read; the deadline bounds a server that trickles bytes.
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(url, timeout=min(timeout, 60.0)) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise ResourceExhausted(f"ADD {url}: {length} bytes is more than the limit of {limit}")
            while chunk := resp.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ResourceExhausted(f"ADD {url}: the body is more than the limit of {limit} bytes")
                if time.monotonic() > deadline:
                    raise ResourceExhausted(f"ADD {url}: the download took more than {timeout:g}s")
                digest.update(chunk)
                out.write(chunk)
            name = _filename(url, resp.headers.get("Content-Disposition"))
            mtime = _last_modified(resp.headers.get("Last-Modified"))
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise InvalidArgument(f"ADD {url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise InvalidArgument(f"ADD {url}: download failed: {reason}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Fetched(path=tmp, filename=name, mtime=mtime, sha256=digest.hexdigest(), size=size)


def verify_checksum(got: Fetched, expected: str, url: str) -> None:
    """ADD --checksum: the download must have the digest `expected` ("sha256:<hex>", or
    sha384/sha512); the error names both digests."""
    algorithm, _, want = expected.partition(":")
    if algorithm == "sha256":
        actual = got.sha256
    else:
        with open(got.path, "rb") as f:
            actual = hashlib.file_digest(f, algorithm).hexdigest()
    if actual != want:
        raise InvalidArgument(f"ADD {url}: checksum mismatch: expected {expected}, "
                              f"got {algorithm}:{actual}")


def place(got: Fetched, target: Path, mode: int, uid: int, gid: int) -> None:
    """Writes the download as a new file at `target` (replacing what is there) with the given
    mode and owner, and Last-Modified (else the download's own mtime) as its mtime."""
    st = os.stat(got.path)
    if lstat_or_none(target) is not None:
        remove_entry(target)
    with open(got.path, "rb") as fin:
        write_new_file(fin, target)
    os.chown(target, uid, gid)
    os.chmod(target, mode)
    mtime = got.mtime if got.mtime is not None else st.st_mtime
    os.utime(target, (mtime, mtime))
