"""Image names ("repository[:tag]"): the one grammar of client and daemon (SPEC §8).

A name is a repository, optionally prefixed by a registry host (with an optional :port), and a
tag; `busybox` means `busybox:latest`. The grammar is docker's reference grammar (the one the
original reads names with, through containers/image): a first component with ".", ":" or equal
to "localhost" is the registry host, whose labels may be upper case; the path after it is lower
case. The limits are the original's: repository at most 255 characters, tag at most 128.
Digest references (`name@sha256:...`) are not names an image can carry.
"""

from __future__ import annotations

import re

from isula_build.errors import InvalidArgument

DEFAULT_TAG = "latest"
MAX_REPOSITORY_LENGTH = 255
MAX_TAG_LENGTH = 128

_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_PATH_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]+)?")
_ALLOWED_CHARS_RE = re.compile(r"[a-z0-9\-_./:]+")


def _invalid(name: str, reason: str) -> InvalidArgument:
    return InvalidArgument(f'invalid image name "{name}": {reason}')


def _partition(name: str) -> tuple[str, str | None]:
    # A colon is a tag separator only after the last "/"; before it, it belongs to host:port.
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        return name[:colon], name[colon + 1:]
    return name, None


def split_domain(name: str) -> tuple[str | None, str]:
    """(registry host[:port] or None, the rest) by docker's rule: the first of several
    components is a host when it has a "." or ":" or is "localhost". Not validated."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, name


def _check_repository(name: str, repository: str) -> None:
    if not repository:
        raise _invalid(name, "repository name is empty")
    if len(repository) > MAX_REPOSITORY_LENGTH:
        raise _invalid(name, f"repository name is longer than {MAX_REPOSITORY_LENGTH} characters")
    host, path = split_domain(repository)
    if path != path.lower():
        raise _invalid(name, "repository name must be lowercase")
    # The path is lower case by now; only the host may still differ from its lower case.
    if not _ALLOWED_CHARS_RE.fullmatch(repository.lower()):
        raise _invalid(name, "repository name may only contain a-z, 0-9, '-', '_', '.', '/' "
                             "and a ':port' after the registry host")
    if host is not None and not _DOMAIN_RE.fullmatch(host):
        raise _invalid(name, f'"{host}" is not a valid registry host[:port]')
    for component in path.split("/"):
        if ":" in component:
            raise _invalid(name, "a ':' may only separate the tag or a registry port")
        if not _PATH_COMPONENT_RE.fullmatch(component):
            raise _invalid(name, f'repository path component "{component}" must be lower-case '
                                 "letters and digits, separated by '.', '_', '__' or '-'")


def _check_tag(name: str, tag: str) -> None:
    if len(tag) > MAX_TAG_LENGTH:
        raise _invalid(name, f"tag is longer than {MAX_TAG_LENGTH} characters")
    if not _TAG_RE.fullmatch(tag):
        raise _invalid(name, f'tag "{tag}" must be letters, digits, \'_\', \'.\' or \'-\', '
                             "starting with a letter, digit or '_'")


def normalize_name(name: str) -> str:
    """Validates name and returns it as "repository:tag" (adding ":latest" when untagged)."""
    if not name:
        raise InvalidArgument("invalid image name \"\": the name is empty")
    if "@" in name:
        raise _invalid(name, "digest references (@sha256:...) cannot be used as image names")
    repository, tag = _partition(name)
    _check_repository(name, repository)
    if tag is None:
        tag = DEFAULT_TAG
    _check_tag(name, tag)
    return f"{repository}:{tag}"


def split_name(name: str) -> tuple[str, str]:
    """(repository, tag) of a name; the name is validated and normalized first."""
    repository, tag = _partition(normalize_name(name))
    assert tag is not None  # normalize_name always adds one
    return repository, tag
