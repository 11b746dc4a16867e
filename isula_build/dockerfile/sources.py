"""What kind of source an ADD/COPY word names: a local path, an http(s) URL or a git repository.

A git source is BuildKit's: `git://…`, `ssh://…`, `git@host:path`, or an http(s) URL whose path
ends in `.git`; a fragment `#ref:subdir` picks the branch, tag or commit and the directory of
the checkout to copy (both optional: `#main`, `#:docs`, `#v1.0:src`).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

# user@host:path; a host never starts with "-" (it would reach ssh as an option).
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9][A-Za-z0-9.-]*:(?!//)")


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


@dataclass(frozen=True)
class GitSource:
    remote: str      # what `git clone` is given: the source without its fragment
    ref: str         # branch, tag or commit; "" for the remote's default branch
    subdir: str      # directory of the checkout to copy, "" for all of it


def git_source(source: str) -> GitSource | None:
    """The git repository `source` names, or None when it is not a git source."""
    remote, _, fragment = source.partition("#")
    if remote.startswith(("git://", "ssh://")) or _SCP_LIKE.match(remote):
        pass
    elif is_url(remote):
        if not urllib.parse.urlsplit(remote).path.endswith(".git"):
            return None
    else:
        return None
    ref, _, subdir = fragment.partition(":")
    return GitSource(remote, ref, subdir.strip("/"))


def is_remote(source: str) -> bool:
    """An http(s) URL or a git repository: fetched by the daemon, not read from the context."""
    return is_url(source) or git_source(source) is not None


__all__ = ["GitSource", "git_source", "is_remote", "is_url"]
