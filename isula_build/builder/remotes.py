"""The remote sources of one build's ADD steps, each fetched once.

A step's cache key must cover what a URL or a git ref gives today, so the executor fetches a
remote source before looking the step up (its key is made of the download's digest, or the
commit); the copy then uses what was fetched, and a step served from the cache has only
downloaded. Fetched files and checkouts live in the build's work dir and go with it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from isula_build.builder import fetch
from isula_build.builder.gitsource import Checkout, checkout
from isula_build.dockerfile.sources import git_source


@dataclass
class RemoteSources:
    work_dir: Path
    fetch_limit: int = fetch.DEFAULT_LIMIT
    fetch_timeout: float = fetch.DEFAULT_TIMEOUT
    _urls: dict[str, fetch.Fetched] = field(default_factory=dict)
    _checkouts: dict[tuple[str, bool], Checkout] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _serial: int = 0

    def _folder(self, prefix: str) -> Path:
        with self._lock:
            self._serial += 1
            return self.work_dir / f"{prefix}-{self._serial}"

    def url(self, url: str, checksum: str | None = None) -> fetch.Fetched:
        """The download of `url` (made on first use), checked against ADD --checksum."""
        got = self._urls.get(url)
        if got is None:
            got = fetch.fetch_url(url, self.work_dir, limit=self.fetch_limit,
                                  timeout=self.fetch_timeout)
            # Stages running at once may both fetch it; all use the first download.
            got = self._urls.setdefault(url, got)
        if checksum is not None:
            fetch.verify_checksum(got, checksum, url)
        return got

    def git(self, source: str, keep_git_dir: bool) -> Checkout:
        """The checkout of the git source `source` (made on first use)."""
        found = self._checkouts.get((source, keep_git_dir))
        if found is None:
            parsed = git_source(source)
            assert parsed is not None, source
            found = checkout(parsed, self._folder("git"), keep_git_dir)
            found = self._checkouts.setdefault((source, keep_git_dir), found)
        return found

    def content(self, source: str, checksum: str | None, keep_git_dir: bool) -> str:
        """What stands for a remote source in a step key."""
        if git_source(source) is not None:
            done = self.git(source, keep_git_dir)
            return f"git {source} {done.commit}"
        got = self.url(source, checksum)
        return f"url {source} {got.sha256} {got.filename} {got.mtime}"


__all__ = ["RemoteSources"]
