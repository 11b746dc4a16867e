"""The frontend's one error type: an InvalidArgument that knows the Dockerfile line."""

from __future__ import annotations

from isula_build.errors import InvalidArgument


class DockerfileError(InvalidArgument):
    """A Dockerfile (or .dockerignore) the frontend refuses; the message names the line.

    ``reason`` is the bare explanation, ``line`` the 1-based line where the offending
    instruction starts (None when the problem is not tied to one line, e.g. the size limit),
    ``source`` the file the line is in.
    """

    def __init__(self, reason: str, line: int | None = None, source: str = "Dockerfile") -> None:
        self.reason = reason
        self.source = source
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}", line=line)

    @classmethod
    def on_line(cls, line: int, reason: str) -> DockerfileError:
        # The constructor writes the "Dockerfile line N: " prefix itself.
        return cls(reason, line)

    def at(self, line: int) -> DockerfileError:
        """The same error placed on a line (used when a helper raised it without one)."""
        return DockerfileError(self.reason, line, self.source)
