"""login/logout with an htpasswd registry over TLS (CA of the test's own in certs.d), and token
auth with the test token server: scopes, refresh, anonymous pulls, cross-repository mounts."""

from __future__ import annotations

import json
import shutil
import stat
import time
from pathlib import Path

import pytest

from isula_build.api import control_pb2 as pb
from isula_build.cli.crypto import encrypt
from isula_build.daemon.handlers.login import login
from isula_build.daemon.handlers.logout import logout
from isula_build.distribution.pull import pull_image
from isula_build.distribution.push import push_image
from isula_build.errors import FailedPrecondition, NotFound
from isula_build.registry.client import RegistryClient
from isula_build.registry.credentials import AuthFile, Credentials
from isula_build.registry.tls import certs_dir
from tests.registry.conftest import import_busybox
from tests.registry.servers import TokenServer, make_ca, make_server_cert, write_htpasswd

USER, PASSWORD = "cooper", "s3cret-Pa55"


def _encrypted(state, password: str) -> str:
    return encrypt(password, state.keys._private.public_key())


@pytest.fixture
def tls_registry(registry_factory, tmp_path: Path):
    ca, ca_key, ca_cert = make_ca(tmp_path / "pki")
    server = make_server_cert(tmp_path / "pki", ca_key, ca_cert)
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD})
    reg = registry_factory("tls", tls=server, htpasswd=htpasswd)
    reg.ca = ca
    return reg


def _trust(state, reg) -> None:
    directory = certs_dir(state.options.config_dir, reg.host)
    directory.mkdir(parents=True)
    shutil.copy(reg.ca.cert, directory / "ca.crt")


def test_login_checks_saves_and_logout_removes(make_state, tls_registry, busybox_tar) -> None:
    state = make_state()
    _trust(state, tls_registry)
    host = tls_registry.host
    auth_file = state.options.config_dir / "auth.json"

    with pytest.raises(FailedPrecondition, match="wrong username or password"):
        login(state, pb.LoginRequest(server=host, username=USER,
                                     password=_encrypted(state, "wrong")))
    assert not auth_file.exists()

    reply = login(state, pb.LoginRequest(server=host, username=USER,
                                         password=_encrypted(state, PASSWORD)))
    assert reply.content == "Login Succeeded"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    saved = json.loads(auth_file.read_text())
    assert list(saved["auths"]) == [host]
    assert AuthFile(state.options.config_dir).get(host) == Credentials(USER, PASSWORD)

    # The saved credentials serve push and pull over verified TLS.
    name = f"{host}/team/bb:1"
    image_id = import_busybox(state, busybox_tar, name)
    push_image(state.store, state.registry, name, name, "docker", lambda line: None)
    other = make_state("other")
    _trust(other, tls_registry)
    with pytest.raises(FailedPrecondition, match="access denied"):
        pull_image(other.store, other.registry, name, lambda line: None)
    shutil.copy(auth_file, other.options.config_dir / "auth.json")
    assert pull_image(other.store, other.registry, name, lambda line: None).id == image_id

    reply = logout(state, pb.LogoutRequest(server=host))
    assert reply.result == f"Removed authentication for {host}"
    assert json.loads(auth_file.read_text())["auths"] == {}
    with pytest.raises(NotFound, match="Not logged in"):
        logout(state, pb.LogoutRequest(server=host))
    assert logout(other, pb.LogoutRequest(all=True)).result == "Removed authentications"
    assert json.loads((other.options.config_dir / "auth.json").read_text())["auths"] == {}


def test_untrusted_certificate_is_refused(make_state, tls_registry) -> None:
    state = make_state()  # no ca.crt in certs.d
    with pytest.raises(FailedPrecondition, match="certificate"):
        login(state, pb.LoginRequest(server=tls_registry.host, username=USER,
                                     password=_encrypted(state, PASSWORD)))
    # Listed as insecure, the same registry is used without verification.
    insecure = make_state("insecure", insecure=(tls_registry.host,))
    reply = login(insecure, pb.LoginRequest(server=tls_registry.host, username=USER,
                                            password=_encrypted(insecure, PASSWORD)))
    assert reply.content == "Login Succeeded"


def test_credentials_never_logged(make_state, tls_registry, caplog) -> None:
    state = make_state()
    _trust(state, tls_registry)
    caplog.set_level("DEBUG")
    login(state, pb.LoginRequest(server=tls_registry.host, username=USER,
                                 password=_encrypted(state, PASSWORD)))
    with pytest.raises(FailedPrecondition):
        login(state, pb.LoginRequest(server=tls_registry.host, username=USER,
                                     password=_encrypted(state, PASSWORD + "x")))
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(AuthFile(state.options.config_dir).get(tls_registry.host))


@pytest.fixture
def token_registry(registry_factory, tmp_path: Path):
    token = TokenServer(tmp_path / "token", {USER: PASSWORD}, lifetime=11)
    return registry_factory("token", token=token)


def test_token_auth_scopes_mount_and_anonymous_pull(make_state, token_registry,
                                                   big_layer_tar) -> None:
    host = token_registry.host
    token = token_registry.token
    state = make_state(insecure=(host,))
    login(state, pb.LoginRequest(server=host, username=USER, password=_encrypted(state, PASSWORD)))
    name = f"{host}/team/app:1"
    image_id = import_busybox(state, big_layer_tar, name)
    token.requests.clear()
    push_image(state.store, state.registry, name, name, "docker", lambda line: None)
    assert ["repository:team/app:pull,push"] in [r["scope"] for r in token.requests]
    assert all(r["user"] == USER and r["service"] == token.service for r in token.requests)

    token.requests.clear()
    push_image(state.store, state.registry, name, f"{host}/team/copy:1", "docker",
               lambda line: None)
    # The mount asks for push on the target and pull on the source, in one token.
    assert sorted(["repository:team/app:pull", "repository:team/copy:pull,push"]) in \
        [sorted(r["scope"]) for r in token.requests]

    # Anonymous users may pull (the token server grants them pull only).
    anonymous = make_state("anonymous", insecure=(host,))
    assert pull_image(anonymous.store, anonymous.registry, f"{host}/team/copy:1",
                      lambda line: None).id == image_id
    assert any(r["user"] is None for r in token.requests)
    with pytest.raises(FailedPrecondition):
        push_image(anonymous.store, anonymous.registry, f"{host}/team/copy:1",
                   f"{host}/team/copy:2", "docker", lambda line: None)


def test_token_is_refreshed_before_it_expires(make_state, token_registry, busybox_tar) -> None:
    host = token_registry.host
    token = token_registry.token
    state = make_state(insecure=(host,))
    login(state, pb.LoginRequest(server=host, username=USER, password=_encrypted(state, PASSWORD)))
    name = f"{host}/app:1"
    import_busybox(state, busybox_tar, name)
    push_image(state.store, state.registry, name, name, "docker", lambda line: None)

    client = RegistryClient(host, state.options.config_dir, True, Credentials(USER, PASSWORD))
    token.requests.clear()
    client.get_manifest("app", "1")
    client.get_manifest("app", "1")
    assert len(token.requests) == 1  # cached while fresh
    time.sleep(1.5)  # 11 s lifetime, refreshed 10 s before the end
    client.get_manifest("app", "1")
    assert len(token.requests) == 2


def test_wrong_password_with_token_server(make_state, token_registry) -> None:
    state = make_state(insecure=(token_registry.host,))
    with pytest.raises(FailedPrecondition):
        login(state, pb.LoginRequest(server=token_registry.host, username=USER,
                                     password=_encrypted(state, "nope")))
    assert not (state.options.config_dir / "auth.json").exists()
