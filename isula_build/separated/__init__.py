"""Separated images: an application image saved as base, lib and app tarballs plus a manifest of
checksums, and loaded back from them (the original isula-build's `save -b/-l` and `load -d`).

See docs/architecture.md ("Separated images") for the format and how it streams.
"""
