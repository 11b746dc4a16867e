"""The build engine: stage executor, RUN in an OCI container, COPY/ADD, commit."""
