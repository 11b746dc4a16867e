"""HealthCheck: the client's first call; a daemon that answers is serving."""

from __future__ import annotations

from isula_build.api import control_pb2 as pb


def health_check() -> pb.HealthCheckResponse:
    return pb.HealthCheckResponse(status=pb.HealthCheckResponse.SERVING)
