"""The one exception hierarchy of the project, for the client and the daemon alike.

Every error a user can cause or meet derives from IsulaBuildError; its message is shown to the
user as is (SPEC §6).  The classes say what kind of failure it is; which gRPC status code a kind
answers with is the daemon's business (daemon/status.py), so this module needs only the standard
library and the client can import it before it decides it needs grpc at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_E = TypeVar("_E", bound="IsulaBuildError")


class IsulaBuildError(Exception):
    """Base of all project errors; the message is shown to the user unchanged.

    ``line`` is the 1-based Dockerfile line the error is about (a .dockerignore line for some
    DockerfileErrors, see its ``source``), None when the error is about no line.
    """

    line: int | None = None

    def __init__(self, *args: object, line: int | None = None) -> None:
        super().__init__(*args)
        self.line = line

    @classmethod
    def on_line(cls: type[_E], line: int, reason: str) -> _E:
        """The error about a Dockerfile line: "Dockerfile line N: <reason>", with .line = N."""
        return cls(f"Dockerfile line {line}: {reason}", line=line)


class InvalidArgument(IsulaBuildError):
    """The request or an input file is malformed (bad name, bad archive, bad flag value)."""


class NotFound(IsulaBuildError):
    """An image, file, or other named thing does not exist."""


class AlreadyExists(IsulaBuildError):
    """Something that must be new exists already (an output file, a running build ID)."""


class FailedPrecondition(IsulaBuildError):
    """The system is not in a state that allows the operation (e.g. image in use)."""


class ResourceExhausted(IsulaBuildError):
    """A size or count limit was exceeded (SPEC §8)."""


class Unimplemented(IsulaBuildError):
    """A protocol method whose feature has not landed yet."""


class Unavailable(IsulaBuildError):
    """A service this one depends on cannot be reached (a registry, the daemon)."""


class Cancelled(IsulaBuildError):
    """The client went away or the daemon is stopping, and the work stopped."""


class ConfigError(IsulaBuildError):
    """A daemon configuration file or flag is invalid; the message names the file."""


class InternalError(IsulaBuildError):
    """The host failed the daemon (a mount, a kernel call), not the request."""


# --- errors of one place, kept here so that there is one hierarchy -----------------------------

class FlagError(InvalidArgument):
    """A malformed global flag of the client (--host, --timeout, --log-level); raised before
    anything is contacted."""


class DaemonUnreachable(Unavailable):
    """The daemon did not answer SERVING to the client's health check within the timeout."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"Cannot connect to the isula-builder at {address}. Is the isula-builder running?")


class DaemonPermissionDenied(Unavailable):
    """The daemon's socket refused the client's user (EACCES): it is 0660 root:<group>, so only
    root and the members of that group may connect. ``group`` is the socket's group as a name,
    or as `ID <gid>` when it has none; None when the socket itself cannot be looked at."""

    def __init__(self, address: str, group: str | None) -> None:
        whose = (f"the socket is owned by group {group}; run as root or as a member of that group"
                 if group else "run as root or as a member of the group owning the socket")
        super().__init__(
            f"permission denied while connecting to the isula-builder at {address}: {whose}")


class RegistryUnavailable(Unavailable):
    """The registry cannot be reached or keeps failing."""


class RunError(IsulaBuildError):
    """A RUN command failed (non-zero exit) or the runtime could not start it."""


class RemoveFailed(IsulaBuildError):
    """Some images could not be removed; the message carries their reasons too, since the
    per-image lines go to stdout and the client shows only the status on stderr.  ``failures``
    lets the daemon answer with their status code when they share one."""

    def __init__(self, failures: Sequence[IsulaBuildError]) -> None:
        super().__init__("remove one or more images failed: "
                         + "; ".join(str(exc) for exc in failures))
        self.failures = tuple(failures)


# --- re-worded errors ----------------------------------------------------------------------

def reworded(exc: IsulaBuildError, message: str) -> IsulaBuildError:
    """An error of the same kind (so the same status code) with a new message and exc's line."""
    try:
        new = type(exc)(message)
    except TypeError:  # an error class with a constructor of its own
        new = InvalidArgument(message)
    new.line = exc.line
    return new


def at_line(exc: IsulaBuildError, line: int) -> IsulaBuildError:
    """exc placed on a Dockerfile line: the same kind, "Dockerfile line N: <exc>", .line = N."""
    new = reworded(exc, f"Dockerfile line {line}: {exc}")
    new.line = line
    return new
