"""`ctr-img build -o SPEC`: the spec checked before anything is built, the names it gives the
built image in the store, and the built image exported through copy_image to the transport it
names (transports/reference.py parses specs, transports/writers.py opens their writers).

Pushing needs the daemon (its registries.toml, auth.json and certs.d): `export` gets its settings.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from isula_build.distribution.lists import load_list, write_list_archive
from isula_build.distribution.manifests import push_list
from isula_build.distribution.push import push_image
from isula_build.errors import FailedPrecondition, InvalidArgument, NotFound, Unimplemented
from isula_build.image.compressionspec import DEFAULT_COMPRESSION, LayerCompression
from isula_build.image.reference import normalize_name
from isula_build.progress import Report
from isula_build.registry.settings import RegistrySettings
from isula_build.store import ImageRecord, Store
from isula_build.transports.copy import copy_image
from isula_build.transports.newfile import output_exists
from isula_build.transports.oci_archive import OciArchiveWriter
from isula_build.transports.reference import (ArchiveRef, OciArchiveRef, RegistryRef, TransportRef,
                                             parse_reference)
from isula_build.transports.store import StoreSource
from isula_build.transports.writers import open_writer


def parse_output(spec: str) -> TransportRef | None:
    """The parsed spec, None for ""; InvalidArgument for a malformed one. Archive paths must
    be absolute, new, in an existing directory; registry names must start with the registry."""
    if not spec:
        return None
    ref = parse_reference(spec)
    if isinstance(ref, ArchiveRef):
        return dataclasses.replace(ref, path=str(_archive_path(spec, ref.path)))
    return ref


def image_names(output: TransportRef | None, tag: str) -> list[str]:
    """The names the built image gets in the store, as the original's applyTag gives them: the
    output's NAME:TAG (archive, docker-daemon, isulad; REGISTRY/REPO:TAG of a push), then -t.
    They are set at the commit, before the export, so a failed export leaves the image named."""
    names = [output.name] if output is not None and output.name else []
    if tag:
        names.append(normalize_name(tag))
    return list(dict.fromkeys(names))


def _archive_path(spec: str, text: str) -> Path:
    if not os.path.isabs(text):
        raise InvalidArgument(f"invalid output {spec!r}: the archive path must be absolute")
    path = Path(os.path.normpath(text))
    if os.path.lexists(path):
        raise output_exists(path)
    if not path.parent.is_dir():
        raise NotFound(f"invalid output {spec!r}: directory {path.parent} does not exist")
    return path


def export(ref: TransportRef, store: Store, image: ImageRecord, tmp_dir: Path,
           log: Callable[[str], None], registry: RegistrySettings | None = None,
           progress: Report | None = None,
           compression: LayerCompression = DEFAULT_COMPRESSION) -> None:
    """Copies the built image to the output (the copy lines go to `log`, the bytes copied to
    `progress`). Registry outputs need the daemon's registry settings (`registry`) and compress
    their layers with `compression` (checked against the output by
    transports.reference.output_compression)."""
    if isinstance(ref, RegistryRef):
        if registry is None:
            raise Unimplemented(f"output {ref.transport}:// needs the daemon's registry settings")
        push_image(store, registry, image.id, ref.name, ref.image_format, log, progress,
                   compression)
        return
    names = [ref.name] if ref.name else []
    with open_writer(ref, tmp_dir) as writer, StoreSource(store, image) as src, \
            writer.image(names) as dst:
        copy_image(src, dst, log, progress)


def export_list(ref: TransportRef, store: Store, record: ImageRecord, tmp_dir: Path,
                log: Callable[[str], None], registry: RegistrySettings | None = None) -> None:
    """Copies a multi-platform build's manifest list to the output: a registry gets every
    image and the list, an oci-archive the images and an index of them (platforms.py refused
    the transports that hold one image before the build)."""
    manifest_list = load_list(store, record.id)
    if isinstance(ref, RegistryRef):
        if registry is None:
            raise Unimplemented(f"output {ref.transport}:// needs the daemon's registry settings")
        push_list(store, registry, manifest_list, ref.name, log)
        return
    if not isinstance(ref, OciArchiveRef):
        raise FailedPrecondition(f"output {ref.transport}: cannot hold a manifest list")
    with OciArchiveWriter(Path(ref.path)) as archive:
        write_list_archive(store, manifest_list, archive, [ref.name] if ref.name else [], log)
