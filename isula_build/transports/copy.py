"""The one copy routine: every save, load, import, pull, push and build commit goes through here."""

from __future__ import annotations

import hashlib
from typing import Callable

from isula_build.progress import BlobMeter, Report
from isula_build.transports.base import ImageDestination, ImageSource, LayerInfo


def copy_image(src: ImageSource, dst: ImageDestination, log: Callable[[str], None],
               progress: Report | None = None) -> str:
    """Copies src to dst layer by layer and returns the image ID (sha256 of the config).

    The log lines are the ones containers/image prints (SPEC §4), one call of log each. A layer
    the destination already has is still announced, as the original does, but not re-read.
    progress, when given, is told the bytes of each layer copied (not of those skipped or
    linked in without a copy).
    """
    log("Getting image source signatures")
    stored: list[LayerInfo] = []
    for layer in src.layers():
        if layer.diff_id is not None:
            log(f"Copying blob {layer.diff_id}")
            if dst.has_layer(layer):
                stored.append(layer)
                continue
        verified = src.verified_file(layer)
        if verified is not None:
            written = dst.put_verified_layer(layer, verified)
        elif progress is None:
            with src.open_layer(layer) as stream:
                written = dst.put_layer(layer, stream)
        else:
            meter = BlobMeter(progress, layer.diff_id or "", layer.size)
            with src.open_metered(layer, meter) as stream:
                meter.start()
                written = dst.put_layer(layer, stream)
            meter.finish(written.diff_id)
        if layer.diff_id is None:
            # The digest of an imported tarball exists only once it has been read through.
            log(f"Copying blob {written.diff_id}")
        stored.append(written)
    src.layers_copied(stored)
    config = src.config_bytes()
    log(f"Copying config sha256:{hashlib.sha256(config).hexdigest()}")
    dst.put_config(config)
    log("Writing manifest to image destination")
    log("Storing signatures")
    # containers/image also commits last, after the signatures (there are none to store here).
    return dst.commit()
