"""The one copy routine: every save, load, import, pull, push and build commit goes through here."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from isula_build.progress import BlobMeter, Report
from isula_build.transports.base import ImageDestination, ImageSource, LayerInfo


def copy_image(src: ImageSource, dst: ImageDestination, log: Callable[[str], None],
               progress: Report | None = None) -> str:
    """Copies src to dst layer by layer and returns the image ID (sha256 of the config).

    The log lines are the ones containers/image prints (SPEC §4), one call of log each. A layer
    the destination already has is still announced, as the original does, but not re-read.
    When both sides allow it (a pull into the store), up to that many layers are copied at once
    on threads of their own; the lines, and what the destination is told, keep the layer order.
    progress, when given, is told the bytes of each layer copied (not of those skipped or
    linked in without a copy).
    """
    log("Getting image source signatures")
    layers = src.layers()
    workers = min(src.parallel_layers, dst.parallel_layers)
    if workers > 1 and all(layer.diff_id is not None for layer in layers):
        with ThreadPoolExecutor(workers, thread_name_prefix="copy-layer") as pool:
            stored = _copy_layers_at_once(src, dst, layers, log, pool, progress)
    else:
        stored = [_copy_in_turn(src, dst, layer, log, progress) for layer in layers]
    src.layers_copied(stored)
    config = src.config_bytes()
    log(f"Copying config sha256:{hashlib.sha256(config).hexdigest()}")
    dst.put_config(config)
    log("Writing manifest to image destination")
    log("Storing signatures")
    # containers/image also commits last, after the signatures (there are none to store here).
    return dst.commit()


def _copy_layer(src: ImageSource, dst: ImageDestination, layer: LayerInfo,
                progress: Report | None) -> LayerInfo:
    verified = src.verified_file(layer)
    if verified is not None:
        return dst.put_verified_layer(layer, verified)
    if progress is None:
        with src.open_layer(layer) as stream:
            return dst.put_layer(layer, stream)
    meter = BlobMeter(progress, layer.diff_id or "", layer.size)
    with src.open_metered(layer, meter) as stream:
        meter.start()
        written = dst.put_layer(layer, stream)
    meter.finish(written.diff_id)
    return written


def _copy_in_turn(src: ImageSource, dst: ImageDestination, layer: LayerInfo,
                  log: Callable[[str], None], progress: Report | None) -> LayerInfo:
    if layer.diff_id is not None:
        log(f"Copying blob {layer.diff_id}")
        if dst.has_layer(layer):
            return layer
    written = _copy_layer(src, dst, layer, progress)
    if layer.diff_id is None:
        # The digest of an imported tarball exists only once it has been read through.
        log(f"Copying blob {written.diff_id}")
    return written


def _copy_layers_at_once(src: ImageSource, dst: ImageDestination, layers: list[LayerInfo],
                         log: Callable[[str], None], pool: ThreadPoolExecutor,
                         progress: Report | None) -> list[LayerInfo]:
    copies: dict[str, Future[LayerInfo]] = {}  # by diff ID: a layer twice in an image is copied once
    results: list[LayerInfo | Future[LayerInfo]] = []
    try:
        for layer in layers:
            assert layer.diff_id is not None
            log(f"Copying blob {layer.diff_id}")
            if layer.diff_id in copies:
                results.append(copies[layer.diff_id])
            elif dst.has_layer(layer):
                results.append(layer)
            else:
                copies[layer.diff_id] = pool.submit(_copy_layer, src, dst, layer, progress)
                results.append(copies[layer.diff_id])
        return [r.result() if isinstance(r, Future) else r for r in results]
    except BaseException:
        # Layers not started are dropped; those under way end (each stops at its own error or
        # end) before the destination is closed and discards them.
        for future in copies.values():
            future.cancel()
        raise
