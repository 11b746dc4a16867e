"""image/reference.py: image name validation and normalization (SPEC §8)."""

from __future__ import annotations

import pytest

from isula_build.errors import InvalidArgument
from isula_build.image.reference import normalize_name, split_domain, split_name


@pytest.mark.parametrize("name, normalized", [
    ("busybox", "busybox:latest"),
    ("busybox:1.36", "busybox:1.36"),
    ("library/busybox", "library/busybox:latest"),
    ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"),
    ("127.0.0.1:5000/a/b:v2", "127.0.0.1:5000/a/b:v2"),
    ("localhost/app:dev", "localhost/app:dev"),
    ("registry.example.com/team-x/app_1.go:V1.0-rc_2", "registry.example.com/team-x/app_1.go:V1.0-rc_2"),
    ("a__b/c---d:_", "a__b/c---d:_"),
    ("reg.io:5000", "reg.io:5000"),  # no "/": the colon is a tag separator, as in docker
    ("a" * 255, "a" * 255 + ":latest"),
    ("a:" + "t" * 128, "a:" + "t" * 128),
    # docker's grammar: a registry host may be upper case, and is kept as written
    ("Registry.Example.COM:5000/team/app:V1", "Registry.Example.COM:5000/team/app:V1"),
    ("LocalHost.lan/a", "LocalHost.lan/a:latest"),
    ("A.B/c", "A.B/c:latest"),
])
def test_valid_names(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized
    assert normalize_name(normalized) == normalized


@pytest.mark.parametrize("name, reason", [
    ("", "empty"),
    ("Busybox", "lowercase"),
    ("busybox@sha256:" + "0" * 64, "digest"),
    ("a" * 256, "longer than 255"),
    ("a:" + "t" * 129, "longer than 128"),
    ("a:", 'tag ""'),
    ("a:-x", 'tag "-x"'),
    ("a:.x", 'tag ".x"'),
    ("a:b/c", "registry host"),  # a colon before a "/" can only be a port, and "b" is not one
    ("a b", "may only contain"),
    ("a/b$", "may only contain"),
    ("-a", "path component"),
    ("a-", "path component"),
    ("a//b", "path component"),
    ("/a", "path component"),
    ("a/", "path component"),
    ("a...b", "path component"),
    ("host:port/a", "registry host"),
    ("-host.io/a", "registry host"),
    (":tag", "repository name is empty"),
    # only the host may be upper case, and only a component with ".", ":" or "localhost" is one
    ("Reg.io/App", "lowercase"),
    ("reg.io/team/App:1", "lowercase"),
    ("UPPER/a", "lowercase"),
    ("LOCALHOST/a", "lowercase"),
    ("-Reg.io/a", "registry host"),
    ("reg_x.io/a", "registry host"),
    ("r\u00e9g.io/a", "may only contain"),
    ("\u212a.io/a", "registry host"),  # KELVIN SIGN, whose lower case is ASCII "k"
])
def test_invalid_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid image name") as info:
        normalize_name(name)
    assert reason in str(info.value)


@pytest.mark.parametrize("name, parts", [
    ("busybox", ("busybox", "latest")),
    ("127.0.0.1:5000/a/b", ("127.0.0.1:5000/a/b", "latest")),
    ("localhost:5000/x:v1", ("localhost:5000/x", "v1")),
])
def test_split_name(name: str, parts: tuple[str, str]) -> None:
    assert split_name(name) == parts


def test_split_name_validates() -> None:
    with pytest.raises(InvalidArgument):
        split_name("UPPER")


@pytest.mark.parametrize("name, parts", [
    ("busybox", (None, "busybox")),
    ("ns/app:1", (None, "ns/app:1")),
    ("localhost/app", ("localhost", "app")),
    ("Reg.IO:5000/a/b:1", ("Reg.IO:5000", "a/b:1")),
    ("reg.io:5000", (None, "reg.io:5000")),  # one component is never a host
    ("UPPER/a", (None, "UPPER/a")),
])
def test_split_domain(name: str, parts: tuple[str | None, str]) -> None:
    assert split_domain(name) == parts
