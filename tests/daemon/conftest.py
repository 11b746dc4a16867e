"""Fixtures of the daemon tests: talking to isula-builder through the generated stubs alone.

No client code is used: this is how the original Go client talks to the daemon, so these tests
hold the daemon to the wire protocol rather than to our own client.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from isula_build.api import control_pb2_grpc


@pytest.fixture
def stub(daemon) -> Iterator[control_pb2_grpc.ControlStub]:
    channel = grpc.insecure_channel(daemon.host)
    try:
        yield control_pb2_grpc.ControlStub(channel)
    finally:
        channel.close()
