"""Store: the local image store (docs/architecture.md, "The store").

Blobs (image configs, manifest list documents and uncompressed layer tars) are content-addressed
files; image records and names live in SQLite; extracted layer directories are made on first use.
A manifest list is an image record without config or layers: its ID is the sha256 of its list
document, and names, lookup, tag, rm, prune and gc treat it as any image. Anything becomes visible
only when complete, and the database commit comes last, so start-up recovery is simply: empty
tmp/, then remove every blob and layer directory no committed image references.
"""

from __future__ import annotations

import os
import tarfile
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from isula_build.errors import AlreadyExists, InvalidArgument, IsulaBuildError, NotFound
from isula_build.image import jsondoc
from isula_build.image.digest import hex_of, is_hex_id, sha256_hex, validate_digest
from isula_build.image.reference import normalize_name
from isula_build.store import fsutil
from isula_build.store.db import Database
from isula_build.store.extract import extract_layer
from isula_build.store.layout import StoreLayout
from isula_build.store.lock import StoreLock
from isula_build.store.records import ImageRecord, ManifestListData, local_image_of
from isula_build.store.space import SpaceGuard, SpaceReserve

if TYPE_CHECKING:
    from isula_build.store.writer import ImageWriter

# Shortest ID prefix lookup() accepts: fewer hex digits would match too much by accident.
MIN_ID_PREFIX = 3
_HEX_DIGITS = frozenset("0123456789abcdef")


class Store:
    def __init__(self, data_root: Path, reserve: SpaceReserve = SpaceReserve()) -> None:
        self.layout = StoreLayout.under(Path(data_root))
        self.layout.create(Path(data_root))
        # Layer blobs and extractions check it; so do builds, whose work dirs share the data root.
        self.space = SpaceGuard(Path(data_root), reserve)
        self._lock_file = StoreLock(self.layout.lock)
        # Guards database writes, gc and the pins below; blob copies run outside it.
        self._lock = threading.RLock()
        self._pins: dict[int, set[str]] = {}  # writer id -> blob hexes it has put or relies on
        self._extract_locks: dict[str, threading.Lock] = {}
        try:
            self._db = Database(self.layout.db)
            self._recover()
        except BaseException:
            self._lock_file.release()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._lock_file.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------

    def list_images(self) -> list[ImageRecord]:
        """Every image, newest first."""
        with self._lock:
            return self._db.images()

    def lookup(self, ref: str) -> ImageRecord:
        """The image a user means by ref: a name (`busybox` = `busybox:latest`), a 64-hex ID,
        "sha256:" + ID, or an ID prefix of at least MIN_ID_PREFIX hex digits matching one image."""
        with self._lock:
            image_id = self._resolve(ref)
            return self._db.images([image_id])[0]

    def config_bytes(self, image_id: str) -> bytes:
        image_id = image_id.removeprefix("sha256:")
        with self._lock:
            if not is_hex_id(image_id) or not self._db.has_image(image_id):
                raise NotFound(f'image "{image_id}" not found')
            if self._db.list_sources(image_id) is not None:
                raise InvalidArgument(f"image {image_id} is a manifest list: it has no config "
                                      "or layers of its own")
        return self.layout.blob(image_id).read_bytes()

    def layer_blob_path(self, diff_id: str) -> Path:
        """Path of the layer's uncompressed tar; read it, never change it."""
        path = self.layout.blob(hex_of(diff_id))
        if not path.is_file():
            raise NotFound(f"layer {diff_id} not found")
        return path

    def has_layer(self, diff_id: str) -> bool:
        """True when a committed image holds the layer (its blob is then present)."""
        validate_digest(diff_id)
        with self._lock:
            return self._db.has_layer(diff_id)

    def layer_dir_path(self, diff_id: str) -> Path:
        """Where layer_dir puts the layer; nothing is extracted (see extract_layer_dirs)."""
        return self.layout.layer(hex_of(diff_id))

    def extract_layer_dirs(self, paths: Iterable[Path]) -> None:
        """Makes the layer dirs among paths (others are left alone) that are not extracted
        yet: a build names its base's lower dirs by layer_dir_path and calls this before it
        mounts or reads them, so a build whose steps all come from a cache extracts nothing."""
        for path in paths:
            if path.parent == self.layout.layers and not path.is_dir():
                self.layer_dir(f"sha256:{path.name}")

    def layer_dir(self, diff_id: str) -> Path:
        """The layer extracted for overlayfs (a lower dir), made on first use."""
        hex_digest = hex_of(diff_id)
        target = self.layout.layer(hex_digest)
        with self._lock:
            per_layer = self._extract_locks.setdefault(hex_digest, threading.Lock())
        with per_layer:  # one extraction per layer; others wait for it instead of repeating it
            if target.is_dir():
                return target
            blob = self.layer_blob_path(diff_id)
            work = self.layout.tmp / f"extract-{hex_digest}-{uuid.uuid4().hex}"
            try:
                extract_layer(blob, work, self.space.meter())
                fsutil.syncfs(work)
                os.rename(work, target)
                fsutil.fsync_dir(self.layout.layers)
            except IsulaBuildError:
                raise
            except (OSError, tarfile.TarError) as exc:
                raise InvalidArgument(f"cannot extract layer {diff_id}: {exc}") from exc
            finally:
                if work.exists():
                    fsutil.remove_tree(work, self.layout.tmp)
        return target

    # --- writing -----------------------------------------------------------------------------

    def writer(self, uncached: bool = False) -> ImageWriter:
        """A writer for one image; use it as a context manager (see ImageWriter).
        uncached: its layers are written past the page cache (a pull's: fsutil.DirectWriter)."""
        from isula_build.store.writer import ImageWriter
        return ImageWriter(self, uncached)

    def tag(self, ref: str, name: str) -> ImageRecord:
        """Adds name to the image ref; never removes another name of it (SPEC §9). A name that
        another image holds moves to this one."""
        normalized = normalize_name(name)
        with self._lock:
            image_id = self._resolve(ref)
            with self._db.transaction() as conn:
                self._db.set_name(conn, normalized, image_id)
            return self._db.images([image_id])[0]

    def remove(self, ref: str) -> list[str]:
        """Removes one name, or the whole image when ref is its last name or its ID.

        Returns the lines to show: "Untagged image: <name>" per name removed, then
        "Deleted image: <64 hex>" when the image itself went."""
        with self._lock:
            image_id = self._resolve(ref)
            record = self._db.images([image_id])[0]
            name = self._name_of_ref(ref)
            if name is not None and name in record.names and len(record.names) > 1:
                with self._db.transaction() as conn:
                    self._db.remove_name(conn, name)
                return [f"Untagged image: {name}"]
            lines = self._delete_images([record])
            self.gc()
            return lines

    def remove_all(self) -> list[str]:
        with self._lock:
            lines = self._delete_images(self._db.images())
            self.gc()
            return lines

    def prune(self) -> list[str]:
        """Removes the images that have no name, except those a manifest list of this store
        holds (a multi-platform build's images are named only through their list)."""
        with self._lock:
            held = {local_image_of(s) for s in self._db.all_list_sources()}
            lines = self._delete_images([r for r in self._db.images()
                                         if not r.names and r.id not in held])
            self.gc()
            return lines

    def gc(self) -> None:
        """Removes blobs and layer directories that no committed image and no open writer needs."""
        with self._lock:
            with self._db.transaction() as conn:
                self._db.remove_unreferenced_layers(conn)
            keep = self._db.referenced_blobs()
            for pins in self._pins.values():
                keep |= pins
            for entry in os.scandir(self.layout.blobs):
                if entry.name not in keep:
                    os.unlink(entry.path)
            for entry in os.scandir(self.layout.layers):
                if entry.name not in keep:
                    fsutil.remove_tree(Path(entry.path), self.layout.tmp)

    # --- manifest lists ----------------------------------------------------------------------

    def create_manifest_list(self, name: str, document: bytes,
                             sources: Mapping[str, str]) -> ImageRecord:
        """Stores a new manifest list named name. AlreadyExists when the name belongs to any
        image or list (as the original's store refuses a duplicate name); an identical list
        already stored under another name gains this name, as an image would."""
        normalized = normalize_name(name)
        list_id = self._check_list_document(document)
        with self._lock:
            holder = self._db.image_by_name(normalized)
            if holder is not None:
                raise AlreadyExists(f'the name "{normalized}" is already used by image '
                                    f"{holder}; remove it first or choose another name")
            self._put_small_blob(list_id, document)
            try:
                with self._db.transaction() as conn:
                    Database.add_manifest_list(conn, list_id, datetime.now(timezone.utc),
                                               len(document), sources)
                    Database.set_name(conn, normalized, list_id)
            finally:
                self._discard_unreferenced([list_id])  # only when the commit failed
            return self._db.images([list_id])[0]

    def commit_manifest_list(self, names: Sequence[str], document: bytes,
                             sources: Mapping[str, str]) -> ImageRecord:
        """Stores a list a build made; its names move to it from any image or list holding
        them (as a built image's names do), where create_manifest_list refuses them."""
        normalized = [normalize_name(name) for name in names]
        list_id = self._check_list_document(document)
        with self._lock:
            self._put_small_blob(list_id, document)
            try:
                with self._db.transaction() as conn:
                    Database.add_manifest_list(conn, list_id, datetime.now(timezone.utc),
                                               len(document), sources)
                    for name in normalized:
                        Database.set_name(conn, name, list_id)
            finally:
                self._discard_unreferenced([list_id])  # only when the commit failed
            return self._db.images([list_id])[0]

    def manifest_list(self, ref: str) -> ManifestListData:
        """The manifest list ref names (looked up as any image); InvalidArgument when ref is an
        image that is not a list."""
        with self._lock:
            list_id = self._resolve(ref)
            sources = self._db.list_sources(list_id)
            if sources is None:
                raise InvalidArgument(f"{ref} is not a manifest list")
            record = self._db.images([list_id])[0]
            # Read under the lock: a concurrent rm cannot take the blob away meanwhile.
            return ManifestListData(record, self.layout.blob(list_id).read_bytes(), sources)

    def update_manifest_list(self, ref: str, document: bytes,
                             sources: Mapping[str, str]) -> ImageRecord:
        """Replaces the list ref names with a changed document. The ID follows the content, so
        the new list gets a new ID: ref's name moves to it (every name when ref is an ID), it
        keeps the old creation time, and the old list goes once no name is left on it."""
        new_id = self._check_list_document(document)
        with self._lock:
            old = self.manifest_list(ref).record
            if new_id == old.id:
                with self._db.transaction() as conn:
                    Database.set_list_sources(conn, old.id, sources)
                return old
            name = self._name_of_ref(ref)
            moving = [name] if name in old.names else list(old.names)
            self._put_small_blob(new_id, document)
            try:
                with self._db.transaction() as conn:
                    Database.add_manifest_list(conn, new_id, old.created, len(document), sources)
                    for moved in moving:
                        Database.set_name(conn, moved, new_id)
                    if set(old.names) <= set(moving):
                        Database.remove_image(conn, old.id)
            finally:
                # The old document once it is gone; the new one only when the commit failed.
                self._discard_unreferenced([old.id, new_id])
            return self._db.images([new_id])[0]

    @staticmethod
    def _check_list_document(document: bytes) -> str:
        """The list ID (sha256 of document) once document is a JSON object with a manifests
        list; the store keeps it as given, so `manifest inspect` shows these very bytes."""
        try:
            parsed = jsondoc.loads(document)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"manifest list is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("manifests"), list):
            raise InvalidArgument('manifest list is not a JSON object with a "manifests" list')
        return sha256_hex(document)

    def _put_small_blob(self, hex_digest: str, data: bytes) -> None:
        """Writes blobs/<hex> durably (tmp, fsync, rename) before the record that needs it is
        committed. Call with the lock held: gc cannot remove it before that commit, and the
        data is small enough (a list document) to write under the lock."""
        target = self.layout.blob(hex_digest)
        if target.is_file():
            return  # content-addressed: the same bytes are already there
        tmp_path = fsutil.write_durable_tmp(self.layout.tmp, "list-", data)
        try:
            os.rename(tmp_path, target)
            fsutil.fsync_dir(target.parent)
        finally:
            tmp_path.unlink(missing_ok=True)

    # --- for ImageWriter ---------------------------------------------------------------------

    def _pin(self, writer_id: int, hex_digest: str) -> None:
        with self._lock:
            self._pins.setdefault(writer_id, set()).add(hex_digest)

    def _unpin_all(self, writer_id: int) -> set[str]:
        with self._lock:
            return self._pins.pop(writer_id, set())

    def _discard_unreferenced(self, hexes: Iterable[str]) -> None:
        """Removes blobs a closed writer made that nothing else needs (a targeted gc)."""
        with self._lock:
            keep = self._db.referenced_blobs()
            for pins in self._pins.values():
                keep |= pins
            for hex_digest in set(hexes) - keep:
                self.layout.blob(hex_digest).unlink(missing_ok=True)

    # --- internals ---------------------------------------------------------------------------

    def _recover(self) -> None:
        """Start-up: forget whatever a crash left half-written."""
        fsutil.empty_dir(self.layout.tmp)
        self.gc()

    @staticmethod
    def _name_of_ref(ref: str) -> str | None:
        try:
            return normalize_name(ref)
        except InvalidArgument:
            return None

    def _resolve(self, ref: str) -> str:
        """Image ID of ref (call with the lock held)."""
        if not ref:
            raise InvalidArgument("an image name or ID is required")
        if ref.startswith("sha256:"):
            candidate = ref[len("sha256:"):]
            if is_hex_id(candidate) and self._db.has_image(candidate):
                return candidate
            raise NotFound(f'image "{ref}" not found')
        name = self._name_of_ref(ref)
        if name is not None:
            image_id = self._db.image_by_name(name)
            if image_id is not None:
                return image_id
        if MIN_ID_PREFIX <= len(ref) <= 64 and set(ref) <= _HEX_DIGITS:
            matches = self._db.ids_with_prefix(ref)
            if len(matches) > 1:
                raise InvalidArgument(f'image ID prefix "{ref}" is ambiguous: it matches several '
                                      "images; give more digits")
            if matches:
                return matches[0]
        raise NotFound(f'image "{ref}" not found')

    def _delete_images(self, records: list[ImageRecord]) -> list[str]:
        lines: list[str] = []
        with self._db.transaction() as conn:
            for record in records:
                self._db.remove_image(conn, record.id)
                lines.extend(f"Untagged image: {name}" for name in record.names)
                lines.append(f"Deleted image: {record.id}")
        return lines
