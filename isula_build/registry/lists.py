"""Manifest lists made by `manifest create`, kept under `<data_root>/registry/lists/`.

The image store records images with a config and layers; a manifest list has neither, so lists
live here: one JSON file a list (`<64 hex id>.json`) holding its names, the Docker manifest list
document and, for each entry, the remote image it was made from (where `manifest push` copies
it from). Files are replaced atomically; one lock serialises changes within the daemon.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isula_build.errors import AlreadyExists, InvalidArgument, NotFound
from isula_build.image import mediatypes
from isula_build.image.reference import normalize_name

DIRECTORY = "registry/lists"
MIN_PREFIX = 3
_lock = threading.RLock()


@dataclass
class ManifestList:
    id: str
    names: list[str]
    manifests: list[dict[str, Any]] = field(default_factory=list)  # Docker list entries
    sources: dict[str, str] = field(default_factory=dict)  # entry digest -> remote image name

    def document(self) -> dict[str, Any]:
        """The Docker manifest list (schema 2) as `manifest inspect` shows and push sends it."""
        return {"schemaVersion": 2, "mediaType": mediatypes.DOCKER_MANIFEST_LIST,
                "manifests": self.manifests}

    def put(self, entry: dict[str, Any], source: str) -> None:
        """Adds an entry; an entry of the same digest is replaced (as the original does)."""
        self.manifests = [m for m in self.manifests if m["digest"] != entry["digest"]]
        self.manifests.append(entry)
        self.sources[entry["digest"]] = source


class ManifestListStore:
    def __init__(self, data_root: Path) -> None:
        self._dir = data_root / DIRECTORY
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _all(self) -> list[ManifestList]:
        lists = []
        for path in sorted(self._dir.glob("*.json")):
            raw = json.loads(path.read_text())
            lists.append(ManifestList(raw["id"], raw["names"], raw["manifests"], raw["sources"]))
        return lists

    def create(self, name: str) -> ManifestList:
        name = normalize_name(name)
        with _lock:
            if any(name in other.names for other in self._all()):
                raise AlreadyExists(f'a manifest list named "{name}" already exists')
            return ManifestList(secrets.token_hex(32), [name])

    def lookup(self, ref: str) -> ManifestList:
        with _lock:
            lists = self._all()
        try:
            name = normalize_name(ref)
        except InvalidArgument:
            name = None
        for candidate in lists:
            if name in candidate.names:
                return candidate
        bare = ref.removeprefix("sha256:")
        if len(bare) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in bare):
            found = [c for c in lists if c.id.startswith(bare)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f'manifest list ID prefix "{ref}" is ambiguous')
        raise NotFound(f'manifest list "{ref}" not found')

    def save(self, manifest_list: ManifestList) -> None:
        data = json.dumps({"id": manifest_list.id, "names": manifest_list.names,
                           "manifests": manifest_list.manifests,
                           "sources": manifest_list.sources}).encode()
        with _lock:
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".list-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self._dir / f"{manifest_list.id}.json")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
