"""build --secret and --ssh on the client: BuildKit's syntax and defaults, the values read by
the client, and their sealing, which opens for the daemon's key, this build and this id only."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from isula_build.api import control_pb2 as pb
from isula_build.cli.secrets import SecretSource, load_secrets, parse_secret, seal_secrets
from isula_build.cli.sshforward import AgentSpec, parse_ssh, parse_ssh_flags
from isula_build.daemon.keys import KeyPair
from isula_build.daemon.secrets import open_secrets
from isula_build.errors import InvalidArgument


@pytest.mark.parametrize("value, environ, expected", [
    ("id=a,src=/f", {}, SecretSource("a", file="/f")),
    ("id=a,source=/f,type=file", {}, SecretSource("a", file="/f")),
    ("id=a,env=V", {}, SecretSource("a", env="V")),
    ("type=env,id=a,src=V", {}, SecretSource("a", env="V")),
    ("type=env,id=a", {}, SecretSource("a", env="a")),
    ("id=a", {"a": "x"}, SecretSource("a", env="a")),      # buildx: the variable ID if set …
    ("id=a", {}, SecretSource("a", file="a")),              # … else the file ID
    ("id=a,type=file", {"a": "x"}, SecretSource("a", file="a")),
    ('"id=a,b",env=V', {}, SecretSource("a,b", env="V")),
])
def test_parse_secret(value: str, environ: dict[str, str], expected: SecretSource) -> None:
    assert parse_secret(value, environ) == expected


@pytest.mark.parametrize("value, message", [
    ("id=a,type=ssh", "unsupported secret type 'ssh'"),
    ("id=a,src=/f,env=V", "give src or env, not both"),
    ("id=a,bare", "field 'bare' must be a key=value pair"),
    ("env=V", "the id is missing"),
])
def test_bad_secrets(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_secret(value, {})


def test_values_are_read_by_the_client_and_limited(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"file\0value")
    assert load_secrets([f"id=a,src={tmp_path / 'f'}", "id=b,env=V"], {"V": "env"}) == \
        {"a": b"file\0value", "b": b"env"}
    (tmp_path / "big").write_bytes(b"x" * (500 * 1024 + 1))
    with pytest.raises(InvalidArgument, match="larger than 500 KiB"):
        load_secrets([f"id=a,src={tmp_path / 'big'}"], {})
    with pytest.raises(InvalidArgument, match="is not a regular file"):
        load_secrets([f"id=a,src={tmp_path}"], {})


def test_sealed_secrets_open_for_this_build_and_id_only() -> None:
    keys = KeyPair()
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_public_key(keys.public_pem())
    value = os.urandom(300 * 1024)   # far beyond what RSA alone could carry
    sealed = seal_secrets({"big": value, "small": b"tiny-secret"}, "build1", public)  # type: ignore[arg-type]
    wire = b"".join(s.SerializeToString() for s in sealed)
    assert value not in wire and b"tiny-secret" not in wire
    opened = open_secrets(keys, "build1", sealed)
    assert dict(opened) == {"big": value, "small": b"tiny-secret"}
    assert "tiny-secret" not in repr(opened) and "small" in repr(opened)
    with pytest.raises(InvalidArgument, match='build secret "big" does not open'):
        open_secrets(keys, "build2", sealed)
    swapped = pb.BuildSecret(id="small", wrappedKey=sealed[0].wrappedKey, nonce=sealed[0].nonce,
                             sealed=sealed[0].sealed)
    with pytest.raises(InvalidArgument, match='build secret "small" does not open'):
        open_secrets(keys, "build1", [swapped])
    with pytest.raises(InvalidArgument, match="cannot decrypt"):
        open_secrets(KeyPair(), "build1", sealed)


def test_parse_ssh(tmp_path: Path) -> None:
    agent = socket.socket(socket.AF_UNIX)
    agent.bind(str(tmp_path / "agent.sock"))
    try:
        key = tmp_path / "id_ed25519"
        key.write_text("not checked here; ssh-add reads it\n")
        environ = {"SSH_AUTH_SOCK": str(tmp_path / "agent.sock")}
        assert parse_ssh("default", environ) == AgentSpec("default", socket=environ["SSH_AUTH_SOCK"])
        assert parse_ssh(f"git={key},{key}", {}) == AgentSpec("git", keys=(str(key), str(key)))
        with pytest.raises(InvalidArgument, match="SSH_AUTH_SOCK is not set"):
            parse_ssh("default", {})
        with pytest.raises(InvalidArgument, match="an agent socket must come alone"):
            parse_ssh(f"x={environ['SSH_AUTH_SOCK']},{key}", {})
        with pytest.raises(InvalidArgument, match="neither an agent socket nor a key file"):
            parse_ssh(f"x={tmp_path}", {})
        with pytest.raises(InvalidArgument, match="--ssh default is given twice"):
            parse_ssh_flags(["default", f"default={key}"], environ)
    finally:
        agent.close()
