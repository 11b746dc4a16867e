"""The gRPC status the daemon answers an error with: one table over the error classes, and
the message cut to what the wire carries.

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


# The status message travels in the grpc-message header, percent-encoded: every byte outside
# printable ASCII (and "%") becomes "%XX". gRPC clients refuse a response whose headers pass
# 8 KiB some of the time and always past 16 KiB ("received metadata size exceeds ... limit"),
# which would hide the error; the message is kept well under that, the other headers included.
MAX_WIRE_MESSAGE = 6 << 10


def _wire_size(ch: str) -> int:
    return 1 if " " <= ch <= "~" and ch != "%" else 3 * len(ch.encode("utf-8"))


def wire_message(text: str, limit: int = MAX_WIRE_MESSAGE) -> str:
    """`text` fit for a status message: lone surrogates (undecodable bytes of a file name)
    escaped, and, when its encoded form is longer than `limit`, cut in the middle to its start
    and its end around `…[N bytes cut]…` (N counts UTF-8 bytes), on character boundaries."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    sizes = [_wire_size(ch) for ch in text]
    if sum(sizes) <= limit:
        return text
    widest = f"…[{len(text.encode('utf-8'))} bytes cut]…"
    budget = limit - sum(_wire_size(ch) for ch in widest)
    head = _fitting(sizes, budget // 2)
    tail = _fitting(sizes[::-1], budget - budget // 2)
    cut = len(text[head:len(text) - tail].encode("utf-8"))
    return f"{text[:head]}…[{cut} bytes cut]…{text[len(text) - tail:]}"


def _fitting(sizes: list[int], budget: int) -> int:
    """How many of the first characters fit in budget."""
    used = 0
    for count, size in enumerate(sizes):
        used += size
        if used > budget:
            return count
    return len(sizes)
