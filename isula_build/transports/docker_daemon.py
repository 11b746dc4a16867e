"""docker-daemon: images handed to a running docker engine through its API.

The image is written as a docker-archive into a private temporary file, then sent to
`POST /images/load` over the engine's unix socket (http.client on an AF_UNIX socket; no
docker CLI needed), and the file removed. The engine answers 200 with a stream of JSON
messages even when the load fails; an `error` message in it is the failure.

    with DockerDaemonWriter(tmp_dir) as engine:
        with engine.image(["name:tag"]) as dst:
            copy_image(src, dst, log)
    # loaded into docker when the with-block ends without an exception
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from isula_build.errors import FailedPrecondition, InvalidArgument
from isula_build.transports.base import ImageDestination
from isula_build.transports.docker_archive import DockerArchiveWriter

DOCKER_SOCKET = Path("/var/run/docker.sock")
API_TIMEOUT = 600.0  # seconds without progress; a large image takes a while to load
_MAX_ANSWER = 1 << 20


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._socket_path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def load_archive(archive: Path, socket_path: Path = DOCKER_SOCKET) -> list[str]:
    """Sends a docker-archive to the engine; returns the lines it answered (`Loaded image: …`)."""
    conn = _UnixConnection(socket_path, API_TIMEOUT)
    try:
        with open(archive, "rb") as body:
            conn.request("POST", "/images/load?quiet=1", body=body, headers={
                "Content-Type": "application/x-tar",
                "Content-Length": str(os.fstat(body.fileno()).st_size)})
        response = conn.getresponse()
        answer = response.read(_MAX_ANSWER)
    except OSError as exc:
        raise FailedPrecondition(f"cannot reach the docker daemon at {socket_path}: "
                                 f"{exc.strerror or exc}") from None
    except http.client.HTTPException as exc:
        raise FailedPrecondition(f"the docker daemon at {socket_path} answered badly: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        raise FailedPrecondition(f"docker daemon refused the image ({response.status}): "
                                 f"{_message(answer)}")
    lines = []
    for message in _messages(answer):
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise FailedPrecondition("docker daemon failed to load the image: "
                                     f"{message.get('error') or detail.get('message')}")
        text = message.get("stream")
        if isinstance(text, str) and text.strip():
            lines.append(text.strip())
    return lines


def _messages(answer: bytes) -> list[dict]:
    decoder = json.JSONDecoder()
    text = answer.decode("utf-8", "replace")
    found, i = [], 0
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            break
        if isinstance(value, dict):
            found.append(value)
    return found


def _message(answer: bytes) -> str:
    try:
        value = json.loads(answer)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return answer.decode("utf-8", "replace").strip()
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return value["message"]
    return str(value)


class ArchiveHandoff:
    """A docker-archive written to a private temporary file and handed to `deliver` at the
    end; the file is removed whatever happens. Shared by docker-daemon and isulad."""

    def __init__(self, tmp_dir: Path, prefix: str) -> None:
        tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = tmp_dir / f"{prefix}{uuid.uuid4().hex}.tar"
        self._archive = DockerArchiveWriter(self.path)
        self._names: list[str] = []

    def image(self, names: Sequence[str]) -> ImageDestination:
        if not names:
            raise InvalidArgument("an image sent to a container engine needs a name:tag")
        self._names.extend(names)
        return self._archive.image(names)

    def deliver(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is not None:
                self._archive.abort()
                return
            self._archive.close()
            self.deliver()
        finally:
            self.path.unlink(missing_ok=True)


class DockerDaemonWriter(ArchiveHandoff):
    def __init__(self, tmp_dir: Path, socket_path: Path = DOCKER_SOCKET) -> None:
        super().__init__(tmp_dir, "docker-daemon-")
        self._socket = socket_path

    def deliver(self) -> None:
        load_archive(self.path, self._socket)
