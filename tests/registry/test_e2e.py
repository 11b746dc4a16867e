"""The real isula-build client against a real isula-builder and real registries.

These need the Pull, Push, Login, Logout and Manifest* RPCs wired to handlers/pull.py, push.py,
login.py, logout.py and manifest.py in daemon/service.py.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess

import pytest

from tests.registry.servers import make_ca, make_server_cert, write_htpasswd

USER, PASSWORD = "cooper", "s3cret-Pa55"
EXPERIMENTAL = {"ISULABUILD_CLI_EXPERIMENTAL": "enabled"}


def _registries_toml(daemon, insecure: list[str], search: list[str] = ()) -> None:
    quoted = lambda items: ", ".join(f'"{i}"' for i in items)  # noqa: E731
    (daemon.config_dir / "registries.toml").write_text(
        f"[registries.search]\nregistries = [{quoted(search)}]\n"
        f"[registries.insecure]\nregistries = [{quoted(insecure)}]\n"
        "[registries.block]\nregistries = []\n")


@pytest.fixture
def wired(daemon_factory, client_factory, plain_registry, busybox_tar):
    daemon = daemon_factory("d", ["--experimental"])
    _registries_toml(daemon, [plain_registry.host])
    daemon.start()
    client = client_factory(daemon, env={"ISULABUILD_CONFIG_DIR": str(daemon.config_dir)})
    client("ctr-img", "import", str(busybox_tar), "busybox:latest")
    return daemon, client


def test_push_and_pull_with_the_client(wired, plain_registry) -> None:
    daemon, client = wired
    name = f"{plain_registry.host}/e2e/bb:1"
    client("ctr-img", "tag", "busybox:latest", name)
    out = client("ctr-img", "push", name).stdout.splitlines()
    assert out[0] == "Getting image source signatures"
    assert out[1].startswith("Copying blob sha256:") and out[2].startswith("Copying config sha256:")
    assert out[-3:] == ["Writing manifest to image destination", "Storing signatures",
                        f"Push success with image: {name}"]
    client("ctr-img", "rm", name)
    out = client("ctr-img", "pull", name).stdout.splitlines()
    assert out[0] == "Getting image source signatures"
    assert out[-1] == f"Pull success with image: {name}"
    assert name.rsplit(":", 1)[0] in client("ctr-img", "images").stdout

    oci = client("ctr-img", "push", "-f", "oci", name, env=EXPERIMENTAL).stdout
    assert "Push success" in oci
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                                     f"docker://{name}"], check=True, capture_output=True,
                                    text=True).stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"

    missing = client("ctr-img", "pull", f"{plain_registry.host}/e2e/none:1", check=False)
    assert missing.returncode == 1 and "manifest unknown" in missing.stderr


def test_login_logout_with_the_client(daemon_factory, client_factory, registry_factory,
                                      tmp_path) -> None:
    ca, ca_key, ca_cert = make_ca(tmp_path / "pki")
    reg = registry_factory("tls", tls=make_server_cert(tmp_path / "pki", ca_key, ca_cert),
                           htpasswd=write_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD}))
    daemon = daemon_factory("d")
    certs = daemon.config_dir / "certs.d" / reg.host
    certs.mkdir(parents=True)
    shutil.copy(ca.cert, certs / "ca.crt")
    daemon.start()
    client = client_factory(daemon, env={"ISULABUILD_CONFIG_DIR": str(daemon.config_dir)})
    auth = daemon.config_dir / "auth.json"

    bad = client("login", reg.host, "-u", USER, "-p", input="wrong\n", check=False)
    assert bad.returncode == 1 and "Login Failed" in bad.stdout
    assert not auth.exists()
    good = client("login", f"https://{reg.host}/v2", "-u", USER, "-p", input=PASSWORD + "\n")
    assert good.stdout == "Login Succeeded\n"
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600 and reg.host in auth.read_text()
    assert PASSWORD not in daemon.log() and PASSWORD not in good.stdout + good.stderr

    assert client("logout", reg.host).stdout == f"Removed authentication for {reg.host}\n"
    again = client("logout", reg.host, check=False)
    assert again.returncode == 1 and "Not logged in" in again.stderr
    assert client("logout", "-a").stdout == "Removed authentications\n"


def test_manifest_with_the_client(wired, plain_registry) -> None:
    daemon, client = wired
    host = plain_registry.host
    client("ctr-img", "tag", "busybox:latest", f"{host}/m/bb:1")
    client("ctr-img", "push", f"{host}/m/bb:1")
    image_id = client("manifest", "create", "mylist", f"{host}/m/bb:1", env=EXPERIMENTAL).stdout
    assert len(image_id.strip()) == 64
    out = client("manifest", "annotate", "--arch", "arm64", "--variant", "v8", "mylist",
                 f"{host}/m/bb:1", env=EXPERIMENTAL).stdout
    assert out == "manifest annotate succeed\n"
    shown = json.loads(client("manifest", "inspect", "mylist", env=EXPERIMENTAL).stdout)
    assert shown["manifests"][0]["platform"] == {"architecture": "arm64", "os": "linux",
                                                 "variant": "v8"}
    pushed = client("manifest", "push", "mylist", f"{host}/m/list:1", env=EXPERIMENTAL).stdout
    assert "Writing manifest list to image destination" in pushed
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                                     f"docker://{host}/m/list:1"], check=True,
                                    capture_output=True, text=True).stdout)
    assert raw["manifests"] == shown["manifests"]
    # The list is an image of the store: `images` lists it, save refuses it, rm removes it.
    row = next(line.split() for line in client("ctr-img", "images", "mylist").stdout.splitlines()
               if "mylist" in line)
    assert row[:2] == ["mylist", "latest"] and row[-1] == "B"  # the list document's few bytes
    saved = client("ctr-img", "save", "mylist", "-o", str(daemon.root / "list.tar"), check=False)
    assert saved.returncode == 1 and "mylist:latest is a manifest list" in saved.stderr
    assert not (daemon.root / "list.tar").exists()
    removed = client("ctr-img", "rm", "mylist").stdout.splitlines()
    assert len(removed) == 2 and removed[0] == "Untagged image: mylist:latest"
    assert removed[1].startswith(f"Deleted image: {row[2]}")  # the 12-hex ID `images` showed
    gone = client("manifest", "inspect", "mylist", env=EXPERIMENTAL, check=False)
    assert gone.returncode == 1 and "not found" in gone.stderr
