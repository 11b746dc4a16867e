"""Multi-platform base images for the tests: Debian's busybox-static of arm64 and amd64, each
made into an OCI image whose config says its platform, pushed to a registry, and joined there in
a manifest list (what `docker buildx` users publish), with helpers to read what builds made."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEB_ROOTFS_SCRIPT = REPO / "scripts" / "busybox-deb-rootfs.sh"
# Debian architecture → the platform of the image made from its busybox.
ARCHES = {"arm64": {"architecture": "arm64", "os": "linux"},
          "amd64": {"architecture": "amd64", "os": "linux"}}
LIST_REPO = "busybox-multi"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _blob(layout: Path, data: bytes) -> str:
    digest = _digest(data)
    (layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return digest


def write_oci_layout(layout: Path, rootfs_tar: Path, platform: dict[str, str]) -> None:
    """An OCI image layout of one image: the tar as its one layer, a config of `platform`."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    layer = rootfs_tar.read_bytes()
    config = json.dumps({**platform, "created": "2020-01-01T00:00:00Z",
                         "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                            "/usr/bin:/sbin:/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
                         "history": [{"created": "2020-01-01T00:00:00Z"}]}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _blob(layout, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _blob(layout, layer), "size": len(layer)}]}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _blob(layout, manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def skopeo_raw(reference: str) -> tuple[bytes, dict[str, Any]]:
    out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                          f"docker://{reference}"], check=True, capture_output=True).stdout
    return out, json.loads(out)


def publish_busybox_list(host: str, work: Path) -> str:
    """Pushes busybox of each arch (tag = the arch) and the list of them (tag latest) to the
    registry at host; returns the list's name."""
    entries = []
    for arch, platform in ARCHES.items():
        tar = work / f"busybox-{arch}.tar"
        subprocess.run([str(DEB_ROOTFS_SCRIPT), arch, str(tar)], check=True)
        layout = work / f"layout-{arch}"
        write_oci_layout(layout, tar, platform)
        # skopeo converts it to a docker schema 2 image (gzip layers) as it pushes.
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", "--format", "v2s2",
                        f"oci:{layout}:latest", f"docker://{host}/{LIST_REPO}:{arch}"], check=True)
        raw, manifest = skopeo_raw(f"{host}/{LIST_REPO}:{arch}")
        entries.append({"mediaType": manifest["mediaType"], "size": len(raw),
                        "digest": _digest(raw), "platform": platform})
    document = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST,
                           "manifests": entries}).encode()
    request = urllib.request.Request(f"http://{host}/v2/{LIST_REPO}/manifests/latest",
                                     data=document, method="PUT",
                                     headers={"Content-Type": DOCKER_LIST})
    urllib.request.urlopen(request, timeout=30).close()
    return f"{host}/{LIST_REPO}:latest"


def read_oci_archive_files(archive: Path, wanted: list[str]) -> dict[str, dict[str, Any]]:
    """For each image of the oci-archive's list (by platform, `linux/arm64`): its config and
    the content of the `wanted` files found in its layers (the top layer's copy winning)."""
    with tarfile.open(archive) as tar:
        def blob(digest: str) -> bytes:
            member = tar.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
            assert member is not None
            return member.read()

        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        assert [m["mediaType"] for m in index["manifests"]] == \
            ["application/vnd.oci.image.index.v1+json"]
        listed = json.loads(blob(index["manifests"][0]["digest"]))
        found: dict[str, dict[str, Any]] = {}
        for entry in listed["manifests"]:
            platform = entry["platform"]
            manifest = json.loads(blob(entry["digest"]))
            files: dict[str, str] = {}
            for layer in manifest["layers"]:
                with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as lt:
                    for name in wanted:
                        try:
                            member = lt.extractfile(name.lstrip("/"))
                        except KeyError:
                            continue
                        if member is not None:
                            files[name] = member.read().decode()
            found[f"{platform['os']}/{platform['architecture']}"] = {
                "config": json.loads(blob(manifest["config"]["digest"])), "files": files}
        return found
