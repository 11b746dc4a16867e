"""The error hierarchy and the daemon's one table from error classes to gRPC status codes."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from isula_build import errors
from isula_build.daemon.status import MAX_WIRE_MESSAGE, status_code, wire_message
from isula_build.dockerfile import DockerfileError


@pytest.mark.parametrize("exc, code", [
    (errors.IsulaBuildError("x"), grpc.StatusCode.UNKNOWN),
    (errors.InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists("x"), grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unimplemented("x"), grpc.StatusCode.UNIMPLEMENTED),
    (errors.Cancelled("x"), grpc.StatusCode.CANCELLED),
    (errors.ConfigError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InternalError("x"), grpc.StatusCode.INTERNAL),
    (errors.RegistryUnavailable("x"), grpc.StatusCode.UNAVAILABLE),
    (errors.DaemonUnreachable("unix:///x"), grpc.StatusCode.UNAVAILABLE),
    (errors.DaemonPermissionDenied("unix:///x", None), grpc.StatusCode.UNAVAILABLE),
    (errors.FlagError("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.RunError("x"), grpc.StatusCode.UNKNOWN),
    (DockerfileError("x", 3), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_each_class_answers_its_code(exc, code):
    assert status_code(exc) == code


def test_the_most_specific_class_in_the_table_wins():
    class Deeper(errors.NotFound):
        pass

    class Both(errors.RunError, errors.NotFound):
        pass

    assert status_code(Deeper("x")) == grpc.StatusCode.NOT_FOUND
    assert status_code(Both("x")) == grpc.StatusCode.NOT_FOUND


def test_remove_failed_keeps_a_shared_code_and_a_mix_is_unknown():
    missing = [errors.NotFound("image a not found"), errors.NotFound("image b not found")]
    failed = errors.RemoveFailed(missing)
    assert str(failed) == "remove one or more images failed: image a not found; image b not found"
    assert status_code(failed) == grpc.StatusCode.NOT_FOUND
    mixed = errors.RemoveFailed([errors.NotFound("a"), errors.FailedPrecondition("b in use")])
    assert status_code(mixed) == grpc.StatusCode.UNKNOWN


def test_errors_carry_the_dockerfile_line():
    assert errors.NotFound("x").line is None
    err = errors.InvalidArgument.on_line(7, "ADD --checksum is not supported")
    assert (str(err), err.line) == ("Dockerfile line 7: ADD --checksum is not supported", 7)
    frontend = DockerfileError.on_line(4, "unknown instruction: FORM")
    assert (str(frontend), frontend.line) == ("Dockerfile line 4: unknown instruction: FORM", 4)
    assert DockerfileError("too large").line is None


def test_placing_an_error_on_a_line_keeps_its_kind():
    placed = errors.at_line(errors.NotFound('image "x" not found'), 2)
    assert type(placed) is errors.NotFound
    assert (str(placed), placed.line) == ('Dockerfile line 2: image "x" not found', 2)

    class TwoParts(errors.NotFound):
        def __init__(self, kind: str, name: str) -> None:
            super().__init__(f"{kind} {name} not found")

    # A class whose constructor does not take the message becomes an InvalidArgument.
    other = errors.at_line(TwoParts("image", "x"), 5)
    assert (type(other), str(other), other.line) == (
        errors.InvalidArgument, "Dockerfile line 5: image x not found", 5)
    reworded = errors.reworded(placed, "pulling failed")
    assert (type(reworded), str(reworded), reworded.line) == (errors.NotFound, "pulling failed", 2)


def test_the_hierarchy_needs_no_grpc():
    code = "import sys, isula_build.errors, isula_build.dockerfile; print('grpc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _encoded(text: str) -> int:
    """The length of text percent-encoded as gRPC sends a status message."""
    return sum(1 if " " <= ch <= "~" and ch != "%" else 3 * len(ch.encode()) for ch in text)


def test_short_messages_go_on_the_wire_as_they_are():
    text = "Dockerfile line 3: unknown instruction: FORM é%"
    assert wire_message(text) == text
    exact = "x" * MAX_WIRE_MESSAGE
    assert wire_message(exact) == exact


@pytest.mark.parametrize("middle", ["m" * 40_000, "é" * 20_000, "😀" * 10_000, "%" * 30_000])
def test_long_messages_keep_their_start_and_end(middle: str):
    text = "The command 'false " + middle + " end-of-command' returned a non-zero code: 1"
    cut = wire_message(text)
    assert _encoded(cut) <= MAX_WIRE_MESSAGE
    head, marker_and_tail = cut.split("…[", 1)
    count, tail = marker_and_tail.split(" bytes cut]…", 1)
    assert text.startswith(head) and text.endswith(tail) and head.startswith("The command 'false ")
    assert tail.endswith(" end-of-command' returned a non-zero code: 1")
    # N counts the UTF-8 bytes left out, so the parts and N add up to the whole.
    assert len(head.encode()) + int(count) + len(tail.encode()) == len(text.encode())
    # Both ends get about half of the room.
    assert abs(_encoded(head) - _encoded(tail)) <= 12


def test_undecodable_bytes_are_escaped():
    name = b"caf\xff".decode("utf-8", "surrogateescape")
    assert wire_message(f"cannot read {name}") == "cannot read caf\\udcff"
