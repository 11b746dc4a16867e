"""isula-build, the command line client: one module per command group (see main.py)."""
