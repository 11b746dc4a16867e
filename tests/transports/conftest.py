"""Fixtures of the transport tests: small real images, and a log that records copy output."""

from __future__ import annotations

import pytest

from transport_helpers import Image, make_layer


class Log(list):
    """Collects the lines copy_image logs, one call each."""

    def __call__(self, line: str) -> None:
        assert "\n" not in line
        self.append(line)


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def two_images() -> list[Image]:
    """Two images sharing their base layer, the second with two names."""
    base = make_layer({"etc/os-release": b"NAME=test\n", "bin/tool": bytes(range(256)) * 64})
    app = make_layer({"app/main.py": b"print('hi')\n"})
    other = make_layer({"srv/data.txt": b"x" * 10000})
    return [Image([base, app], ["isb-test-app:1"], cmd="app"),
            Image([base, other], ["isb-test-srv:1", "isb-test-srv:latest"], cmd="srv")]
