"""The pure parts of the registry client: names, registries.toml answers, challenges, gzip."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest

from isula_build.errors import FailedPrecondition, InvalidArgument
from isula_build.registry.auth import parse_challenges
from isula_build.registry.config import RegistryPolicy
from isula_build.registry.gzipper import gzip_stream
from isula_build.registry.names import RemoteRef, parse_remote
from isula_build.registry.settings import Registries
from isula_build.registry.tls import certs_dir, ssl_context
from tests.registry.servers import make_ca


@pytest.mark.parametrize("name, ref", [
    ("127.0.0.1:5000/a/b", RemoteRef("127.0.0.1:5000", "a/b", "latest")),
    ("localhost/x:1", RemoteRef("localhost", "x", "1")),
    ("docker.io/busybox", RemoteRef("docker.io", "library/busybox", "latest")),
    ("reg.example.com/ns/app:v2", RemoteRef("reg.example.com", "ns/app", "v2")),
    # docker's grammar: the host may be upper case (and is kept as written), the path not
    ("Reg.example.com/x", RemoteRef("Reg.example.com", "x", "latest")),
])
def test_parse_remote(name: str, ref: RemoteRef) -> None:
    assert parse_remote(name) == ref


@pytest.mark.parametrize("name", ["busybox", "ns/app:1", "reg.example.com/X", "Reg/x", "a@sha256:00"])
def test_parse_remote_refuses(name: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_remote(name)


def test_policy() -> None:
    policy = RegistryPolicy(Registries(search=("a.io", "b.io:5000"), insecure=("b.io:5000",),
                                       block=("c.io", "a.io/private")))
    assert [r.name for r in policy.candidates("app")] == ["a.io/app:latest",
                                                          "b.io:5000/app:latest"]
    assert [r.name for r in policy.candidates("c.io/x:1")] == ["c.io/x:1"]
    assert policy.is_insecure("b.io:5000") and not policy.is_insecure("b.io")
    with pytest.raises(FailedPrecondition, match="blocked"):
        policy.check_allowed(parse_remote("c.io/x"))
    with pytest.raises(FailedPrecondition, match="blocked"):
        policy.check_allowed(parse_remote("a.io/private/x"))
    policy.check_allowed(parse_remote("a.io/privateer/x"))  # a prefix on component boundaries
    with pytest.raises(InvalidArgument, match="short name"):
        RegistryPolicy(Registries()).candidates("app")


def test_parse_challenges() -> None:
    [bearer] = parse_challenges('Bearer realm="https://auth.io/token",service="reg.io",'
                                'scope="repository:a/b:pull,push"')
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.io/token", "service": "reg.io",
                             "scope": "repository:a/b:pull,push"}
    [basic] = parse_challenges('Basic realm="isb \\"test\\""')
    assert basic.scheme == "basic" and basic.params == {"realm": 'isb "test"'}


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, (5 << 20) + 17])
def test_gzip_stream_roundtrip_and_determinism(size: int) -> None:
    half = size // 2
    data = os.urandom(half) + b"text " * ((size - half) // 5) + b"x" * ((size - half) % 5)
    first = b"".join(gzip_stream(io.BytesIO(data)))
    assert gzip.decompress(first) == data
    assert b"".join(gzip_stream(io.BytesIO(data))) == first


def test_tls_contexts_are_made_once_until_the_certificates_change(tmp_path: Path) -> None:
    directory = certs_dir(tmp_path, "reg.example.com:5000")
    first = ssl_context(tmp_path, "reg.example.com:5000")
    assert ssl_context(tmp_path, "reg.example.com:5000") is first
    assert ssl_context(tmp_path, "reg.example.com:5000", verify=False) is not first
    directory.mkdir(parents=True)
    make_ca(directory)   # ca.crt (and its key) appear in certs.d
    with_ca = ssl_context(tmp_path, "reg.example.com:5000")
    assert with_ca is not first
    assert with_ca.cert_store_stats()["x509_ca"] == first.cert_store_stats()["x509_ca"] + 1
    (directory / "ca.crt").write_text("not a certificate")
    with pytest.raises(InvalidArgument, match="cannot use the certificates"):
        ssl_context(tmp_path, "reg.example.com:5000")
