"""The local image store: content-addressed blobs, lazily extracted layers, image records in SQLite
(manifest lists among them).

See docs/architecture.md ("The store") for the on-disk layout and the crash-safety rules.
"""

from isula_build.store.records import (ImageRecord, LayerRecord, ManifestListData, local_image_of,
                                       local_source)
from isula_build.store.store import Store
from isula_build.store.writer import ImageWriter

__all__ = ["ImageRecord", "ImageWriter", "LayerRecord", "ManifestListData", "Store",
           "local_image_of", "local_source"]
