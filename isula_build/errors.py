"""The one exception hierarchy of the project.

Every error a user can cause or meet derives from IsulaBuildError.  Each class carries the gRPC
status code the daemon answers with, so the server maps exceptions to status errors in one place
and the client shows the message as is (SPEC §6).
"""

from __future__ import annotations

import grpc


class IsulaBuildError(Exception):
    """Base of all project errors; the message is shown to the user unchanged."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN


class InvalidArgument(IsulaBuildError):
    """The request or an input file is malformed (bad name, bad archive, bad flag value)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(IsulaBuildError):
    """An image, file, or other named thing does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(IsulaBuildError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(IsulaBuildError):
    """The system is not in a state that allows the operation (e.g. image in use)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(IsulaBuildError):
    """A size or count limit was exceeded (SPEC §8)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unimplemented(IsulaBuildError):
    """A protocol method whose feature has not landed yet."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(IsulaBuildError):
    code = grpc.StatusCode.CANCELLED


class ConfigError(IsulaBuildError):
    """A daemon configuration file or flag is invalid; the message names the file."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class InternalError(IsulaBuildError):
    code = grpc.StatusCode.INTERNAL
