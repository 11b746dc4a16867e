"""The store's SQLite database: images (manifest lists among them), their names and layers.

One connection, used only under the store's lock (the lock serializes writers; reads are quick
and taking the same lock keeps them from seeing a half-applied sequence of statements). WAL
mode with synchronous=FULL: a committed image survives a power cut, and an interrupted
transaction leaves no trace.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from isula_build.errors import InvalidArgument
from isula_build.store.records import ImageRecord, LayerRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id       TEXT PRIMARY KEY,     -- 64 hex, sha256 of the config blob
    created  TEXT NOT NULL         -- ISO 8601, UTC, always with microseconds (sorts as text)
);
CREATE TABLE IF NOT EXISTS layers (
    diff_id  TEXT PRIMARY KEY,     -- "sha256:<hex>" of the uncompressed tar blob
    size     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,     -- 0 = bottom
    diff_id  TEXT NOT NULL REFERENCES layers(diff_id),
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_by_layer ON image_layers(diff_id);
CREATE TABLE IF NOT EXISTS names (
    name     TEXT PRIMARY KEY,     -- normalized "repository:tag"; a name belongs to one image
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS names_by_image ON names(image_id);
CREATE TABLE IF NOT EXISTS manifest_lists (
    -- An image row that is a manifest list: its blob is the list document (no config, no
    -- layers), and image_id is that document's sha256.
    image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    size     INTEGER NOT NULL,     -- bytes of the list document
    sources  TEXT NOT NULL         -- JSON object: entry manifest digest -> remote image name
);
PRAGMA user_version = 2;         -- bump with a migration when the schema changes
"""


class Database:
    def __init__(self, path: Path) -> None:
        # isolation_level=None: transactions are explicit (see transaction()).
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # --- reads -------------------------------------------------------------------------------

    def image_ids(self) -> list[str]:
        return [row[0] for row in self._conn.execute("SELECT id FROM images")]

    def has_image(self, image_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is not None

    def image_by_name(self, name: str) -> str | None:
        row = self._conn.execute("SELECT image_id FROM names WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        # Hex prefixes contain no LIKE wildcards; the range keeps the primary-key index usable.
        rows = self._conn.execute(
            "SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
            (prefix, prefix + "g", limit))
        return [row[0] for row in rows]

    def list_sources(self, image_id: str) -> dict[str, str] | None:
        """The entry sources of a manifest list; None when image_id is not a manifest list."""
        row = self._conn.execute("SELECT sources FROM manifest_lists WHERE image_id = ?",
                                 (image_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def all_list_sources(self) -> list[str]:
        """The entry sources of every manifest list."""
        return [source for (text,) in self._conn.execute("SELECT sources FROM manifest_lists")
                for source in json.loads(text).values()]

    def has_layer(self, diff_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM layers WHERE diff_id = ?", (diff_id,)).fetchone() is not None

    def images(self, ids: Iterable[str] | None = None) -> list[ImageRecord]:
        """Records of the given images (all when ids is None), newest first."""
        where, args = "", tuple[str, ...]()
        if ids is not None:
            id_list = list(ids)
            where = f"WHERE i.id IN ({','.join('?' * len(id_list))})"
            args = tuple(id_list)
        names: dict[str, list[str]] = {}
        layers: dict[str, list[LayerRecord]] = {}
        for image_id, name in self._conn.execute(
                f"SELECT i.id, n.name FROM images i JOIN names n ON n.image_id = i.id {where}", args):
            names.setdefault(image_id, []).append(name)
        for image_id, diff_id, size in self._conn.execute(
                "SELECT i.id, l.diff_id, l.size FROM images i "
                "JOIN image_layers il ON il.image_id = i.id JOIN layers l ON l.diff_id = il.diff_id "
                f"{where} ORDER BY i.id, il.position", args):
            layers.setdefault(image_id, []).append(LayerRecord(diff_id, size))
        records = []
        for image_id, created, list_size in self._conn.execute(
                "SELECT i.id, i.created, ml.size FROM images i "
                "LEFT JOIN manifest_lists ml ON ml.image_id = i.id "
                f"{where} ORDER BY i.created DESC, i.id", args):
            image_layers = tuple(layers.get(image_id, ()))
            records.append(ImageRecord(
                id=image_id,
                names=tuple(sorted(names.get(image_id, ()))),
                created=datetime.fromisoformat(created).astimezone(timezone.utc),
                layers=image_layers,
                size=list_size if list_size is not None else sum(l.size for l in image_layers),
                is_manifest_list=list_size is not None,
            ))
        return records

    def referenced_blobs(self) -> set[str]:
        """Hex digests of every blob a committed image needs: its config (a manifest list: its
        document) and its layer tars."""
        refs = set(self.image_ids())
        refs.update(row[0].split(":", 1)[1] for row in
                    self._conn.execute("SELECT DISTINCT diff_id FROM image_layers"))
        return refs

    # --- writes (call inside transaction()) --------------------------------------------------

    @staticmethod
    def add_image(conn: sqlite3.Connection, image_id: str, created: datetime,
                  layers: Sequence[LayerRecord]) -> bool:
        """Inserts the image and its layers; False (and nothing changed) when it exists."""
        cursor = conn.execute("INSERT OR IGNORE INTO images (id, created) VALUES (?, ?)",
                              (image_id, created.astimezone(timezone.utc).isoformat(timespec="microseconds")))
        if cursor.rowcount == 0:
            return False
        conn.executemany("INSERT OR IGNORE INTO layers (diff_id, size) VALUES (?, ?)",
                         [(layer.diff_id, layer.size) for layer in layers])
        conn.executemany("INSERT INTO image_layers (image_id, position, diff_id) VALUES (?, ?, ?)",
                         [(image_id, i, layer.diff_id) for i, layer in enumerate(layers)])
        return True

    @staticmethod
    def add_manifest_list(conn: sqlite3.Connection, image_id: str, created: datetime,
                          size: int, sources: Mapping[str, str]) -> None:
        """Inserts a manifest list; one already stored gains the sources it lacks (its own win:
        an entry digest names the same manifest wherever it was read from)."""
        if Database.add_image(conn, image_id, created, ()):
            conn.execute("INSERT INTO manifest_lists (image_id, size, sources) VALUES (?, ?, ?)",
                         (image_id, size, json.dumps(dict(sources), sort_keys=True)))
            return
        row = conn.execute("SELECT sources FROM manifest_lists WHERE image_id = ?",
                           (image_id,)).fetchone()
        if row is None:  # the very bytes of an image config: only a forged document does that
            raise InvalidArgument(f"manifest list {image_id} has the ID of an image")
        Database.set_list_sources(conn, image_id, {**sources, **json.loads(row[0])})

    @staticmethod
    def set_list_sources(conn: sqlite3.Connection, image_id: str,
                         sources: Mapping[str, str]) -> None:
        conn.execute("UPDATE manifest_lists SET sources = ? WHERE image_id = ?",
                     (json.dumps(dict(sources), sort_keys=True), image_id))

    @staticmethod
    def set_name(conn: sqlite3.Connection, name: str, image_id: str) -> None:
        """Gives name to image_id, taking it from whichever image held it."""
        conn.execute("INSERT INTO names (name, image_id) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id", (name, image_id))

    @staticmethod
    def remove_name(conn: sqlite3.Connection, name: str) -> None:
        conn.execute("DELETE FROM names WHERE name = ?", (name,))

    @staticmethod
    def remove_image(conn: sqlite3.Connection, image_id: str) -> None:
        # Cascades to names, image_layers and manifest_lists.
        conn.execute("DELETE FROM images WHERE id = ?", (image_id,))

    @staticmethod
    def remove_unreferenced_layers(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)")
