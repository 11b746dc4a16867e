"""The compression a push asks for: `gzip[:LEVEL]` or `zstd[:LEVEL]` (standard library only, so
the client checks the flag without loading the compression libraries).

The levels are the libraries' own: ISA-L (gzip) has four, of which 1-3 are offered; zstd's
are those of zstd(1) without --ultra.
"""

from __future__ import annotations

from dataclasses import dataclass

from isula_build.errors import InvalidArgument

GZIP = "gzip"
ZSTD = "zstd"
OCI_FORMAT = "oci"  # the image format zstd layers need

GZIP_LEVELS = range(1, 4)    # ISA-L's levels (igzip -1 … -3); it has no finer scale
ZSTD_LEVELS = range(1, 20)   # zstd(1)'s levels without --ultra
DEFAULT_GZIP_LEVEL = 1       # pushes are bound by compression: the fastest, about zlib -1's size
DEFAULT_ZSTD_LEVEL = 3       # zstd's own default


@dataclass(frozen=True)
class LayerCompression:
    """How a push compresses the layers it uploads: `gzip` or `zstd` at a level."""

    algorithm: str
    level: int

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.level}"


DEFAULT_COMPRESSION = LayerCompression(GZIP, DEFAULT_GZIP_LEVEL)


def parse_compression(text: str) -> LayerCompression:
    """`gzip`, `gzip:LEVEL` (1-3), `zstd` or `zstd:LEVEL` (1-19); "" is gzip (the original's
    only compression). InvalidArgument otherwise."""
    if not text:
        return DEFAULT_COMPRESSION
    algorithm, sep, level_text = text.partition(":")
    levels = {GZIP: GZIP_LEVELS, ZSTD: ZSTD_LEVELS}.get(algorithm)
    if levels is None:
        raise InvalidArgument(f'unknown compression "{text}" (choose gzip or zstd, optionally '
                              "with :LEVEL)")
    if not sep:
        return LayerCompression(algorithm, DEFAULT_GZIP_LEVEL if algorithm == GZIP
                                else DEFAULT_ZSTD_LEVEL)
    if not level_text.isdigit() or int(level_text) not in levels:
        raise InvalidArgument(f'invalid compression level "{level_text}" for {algorithm} '
                              f"(from {levels.start} to {levels.stop - 1})")
    return LayerCompression(algorithm, int(level_text))


def require_oci_for_zstd(compression: LayerCompression, image_format: str, what: str) -> None:
    """Refuses zstd for a Docker image (`what` names where the format comes from): Docker
    schema 2 has no media type for zstd layers."""
    if compression.algorithm == ZSTD and image_format != OCI_FORMAT:
        raise InvalidArgument(f"zstd compression needs an OCI image, and {what} is "
                              f"{image_format} format: use gzip, or the oci format")

