"""The frontend's one error type: an InvalidArgument that knows the Dockerfile line."""

from __future__ import annotations

from isula_build.errors import InvalidArgument


class DockerfileError(InvalidArgument):
    """A Dockerfile (or .dockerignore) the frontend refuses; the message names the line.

    ``reason`` is the bare explanation, ``line`` the 1-based line where the offending
    instruction starts (None when the problem is not tied to one line, e.g. the size limit).
    """

    def __init__(self, reason: str, line: int | None = None, source: str = "Dockerfile") -> None:
        self.reason = reason
        self.line = line
        self.source = source
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


    def at(self, line: int) -> DockerfileError:
        """The same error placed on a line (used when a helper raised it without one)."""
        return DockerfileError(self.reason, line, self.source)
