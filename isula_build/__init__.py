"""isula-build in Python: the isula-builder daemon and the isula-build client."""

__version__ = "0.1.0"
