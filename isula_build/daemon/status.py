"""The gRPC status code the daemon answers an error with: one table over the error classes.

The most specific class in the table wins (the error's MRO is walked), so a new error class
answers with its parent's code until it is given one of its own here.
"""

from __future__ import annotations

import grpc

from isula_build import errors

_CODES: dict[type[errors.IsulaBuildError], grpc.StatusCode] = {
    errors.IsulaBuildError: grpc.StatusCode.UNKNOWN,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Cancelled: grpc.StatusCode.CANCELLED,
    errors.ConfigError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InternalError: grpc.StatusCode.INTERNAL,
}


def status_code(exc: errors.IsulaBuildError) -> grpc.StatusCode:
    """The code for exc; a RemoveFailed whose failures are of one code (NOT_FOUND for unknown
    images) answers that code, a mix of codes UNKNOWN."""
    if isinstance(exc, errors.RemoveFailed):
        codes = {status_code(failure) for failure in exc.failures}
        if len(codes) == 1:
            return codes.pop()
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    raise TypeError(f"{type(exc).__name__} is not an IsulaBuildError")
