"""Pull as the daemon does it, for the handlers and the build engine (FROM of a missing image):

    pull_image(store, settings, "busybox", log) -> ImageRecord
    start_pull(store, settings, "busybox", log) -> PullUnderWay   # layers copied on a thread

The copy goes through copy_image, so it prints the copy lines of SPEC §4. Registries come from
the settings' registries.toml, credentials from auth.json, TLS from certs.d.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from isula_build.errors import FailedPrecondition, NotFound, RegistryUnavailable
from isula_build.image.platform import Platform
from isula_build.progress import Report
from isula_build.registry.blobinfo import BlobInfoCache
from isula_build.registry.config import RegistryPolicy
from isula_build.registry.connect import open_client
from isula_build.registry.names import RemoteRef
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store
from isula_build.transports.copy import copy_image
from isula_build.transports.registry import RegistrySource
from isula_build.transports.store import StoreDestination

_log = logging.getLogger(__name__)


def pull_image(store: Store, settings: RegistrySettings, name: str,
               log: Callable[[str], None], progress: Report | None = None,
               platform: Platform | None = None, named: bool = True) -> ImageRecord:
    """Pulls name (a short name is tried under each registries.search entry, in order) into the
    store, named registry/repository:tag unless not `named`; returns the stored image. From a
    manifest list, the entry for `platform` (this machine's by default). progress: told the
    bytes of each blob downloaded (see copy_image)."""
    candidates = RegistryPolicy(settings.registries).candidates(name)
    failures: list[str] = []
    for ref in candidates:
        try:
            return _pull(store, settings, ref, log, progress, platform, named)
        except (NotFound, RegistryUnavailable, FailedPrecondition) as exc:
            if len(candidates) == 1:
                raise
            _log.info("pull %s from %s: %s", name, ref.registry, exc)
            failures.append(f"{ref.name}: {exc}")
    raise NotFound(f'image "{name}" not found in the search registries: ' + "; ".join(failures))


def _pull(store: Store, settings: RegistrySettings, ref: RemoteRef, log: Callable[[str], None],
          progress: Report | None, platform: Platform | None, named: bool) -> ImageRecord:
    source, blobinfo = _open(settings, ref, platform)
    try:
        return _copy(store, source, ref, log, progress, named)
    finally:
        blobinfo.close()


def _open(settings: RegistrySettings, ref: RemoteRef,
          platform: Platform | None) -> tuple[RegistrySource, BlobInfoCache]:
    """The image's manifest and config, fetched; the blob-info cache is the caller's to close."""
    blobinfo = BlobInfoCache(settings.data_root)
    try:
        return RegistrySource(open_client(settings, ref), ref, blobinfo, platform=platform), \
            blobinfo
    except BaseException:
        blobinfo.close()
        raise


def _copy(store: Store, source: RegistrySource, ref: RemoteRef, log: Callable[[str], None],
          progress: Report | None, named: bool) -> ImageRecord:
    # The layers are written past the page cache (store/fsutil.DirectWriter): a pulled
    # image is read again only when a build extracts it, and may be many GB.
    with source as src, StoreDestination(store, [ref.name] if named else [],
                                         uncached=True) as dst:
        image_id = copy_image(src, dst, log, progress)
    _log.info("pulled %s as image %s", ref.name, image_id)
    return store.lookup(image_id)


class PullUnderWay:
    """A pull whose image is known (its manifest and config are fetched) while its layers
    are still being copied into the store on a thread of their own: a build can look its
    steps up in a cache, and fetch what they hit, before it needs the base image's layers.
    Every line of the copy goes to the pull's log, from that thread."""

    def __init__(self, config: bytes, diff_ids: list[str],
                 copy: Callable[[], ImageRecord]) -> None:
        self.config = config
        self.diff_ids = diff_ids   # the layers to come, bottom first
        self.image_id = hashlib.sha256(config).hexdigest()
        self._record: ImageRecord | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(copy,), name="base-pull",
                                        daemon=True)
        self._thread.start()

    def _run(self, copy: Callable[[], ImageRecord]) -> None:
        try:
            self._record = copy()
        except BaseException as exc:   # raised by wait(), on the thread that waits
            self._error = exc

    def wait(self) -> ImageRecord:
        """The stored image once every layer is in; the pull's error if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._record is not None
        return self._record


def start_pull(store: Store, settings: RegistrySettings, name: str,
               log: Callable[[str], None], progress: Report | None = None,
               platform: Platform | None = None, named: bool = True) -> ImageRecord | PullUnderWay:
    """pull_image, returning once the image's manifest and config are in hand (an unknown
    image or registry fails here, as pull_image does); the layers follow (PullUnderWay).
    A short name that more than one search registry may hold is pulled whole first: which
    registry has it is only known once a pull has succeeded."""
    candidates = RegistryPolicy(settings.registries).candidates(name)
    if len(candidates) != 1:
        return pull_image(store, settings, name, log, progress, platform, named)
    ref = candidates[0]
    source, blobinfo = _open(settings, ref, platform)

    def copy() -> ImageRecord:
        try:
            return _copy(store, source, ref, log, progress, named)
        finally:
            blobinfo.close()
    diff_ids = [layer.diff_id for layer in source.layers() if layer.diff_id is not None]
    return PullUnderWay(source.config_bytes(), diff_ids, copy)
