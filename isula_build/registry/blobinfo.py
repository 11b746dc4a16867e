"""What the compressed blob of a layer is called, and where it has been seen.

A push compresses a layer once; the digest, size and media type (gzip or zstd) of the blob, and
the repositories that hold it, are remembered here (`<data_root>/registry/blob-info.db`, SQLite), as containers/image's
blob-info cache does. A later push of the same layer then asks the registry (HEAD) or mounts it
from another repository without compressing anything; a pull records the blobs it fetched.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

DIRECTORY = "registry"
DATABASE = "blob-info.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS compressed (
    diff_id TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL, media_type TEXT NOT NULL,
    PRIMARY KEY (diff_id, digest));
CREATE TABLE IF NOT EXISTS locations (
    digest TEXT NOT NULL, registry TEXT NOT NULL, repository TEXT NOT NULL,
    PRIMARY KEY (digest, registry, repository));
"""


@dataclass(frozen=True)
class CompressedBlob:
    digest: str
    size: int
    media_type: str  # a compressed layer type: gzip (docker or OCI spelling) or OCI zstd


class BlobInfoCache:
    def __init__(self, data_root: Path) -> None:
        directory = data_root / DIRECTORY
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = sqlite3.connect(directory / DATABASE, check_same_thread=False,
                                   isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def compressed(self, diff_id: str) -> list[CompressedBlob]:
        with self._lock:
            rows = self._db.execute("SELECT digest, size, media_type FROM compressed "
                                    "WHERE diff_id = ?", (diff_id,)).fetchall()
        return [CompressedBlob(*row) for row in rows]

    def locations(self, digest: str, registry: str) -> list[str]:
        """Repositories of registry known to hold the blob."""
        with self._lock:
            rows = self._db.execute("SELECT repository FROM locations WHERE digest = ? AND "
                                    "registry = ?", (digest, registry)).fetchall()
        return [row[0] for row in rows]

    def record(self, diff_id: str, blob: CompressedBlob, registry: str, repository: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO compressed VALUES (?, ?, ?, ?)",
                             (diff_id, blob.digest, blob.size, blob.media_type))
            self._db.execute("INSERT OR IGNORE INTO locations VALUES (?, ?, ?)",
                             (blob.digest, registry, repository))

    def forget_location(self, digest: str, registry: str, repository: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM locations WHERE digest = ? AND registry = ? AND "
                             "repository = ?", (digest, registry, repository))
