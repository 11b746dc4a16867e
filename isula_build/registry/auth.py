"""Registry authentication: the WWW-Authenticate challenge of `/v2/`, basic auth and bearer
tokens (docker's token protocol) with their scopes and refresh.

Tokens are kept per set of scopes (pull of one repository, push+pull of another, both for a
cross-repository mount) until a little before they expire, or until the registry refuses one.
"""

from __future__ import annotations

import base64
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable

from isula_build.errors import FailedPrecondition, InvalidArgument
from isula_build.image import jsondoc
from isula_build.registry.credentials import Credentials

DEFAULT_TOKEN_SECONDS = 60  # the token spec's default when expires_in is absent
REFRESH_MARGIN = 10.0       # fetch a new token this many seconds before the old one expires
MAX_TOKEN_ANSWER = 1 << 20

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower case
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parses a WWW-Authenticate value: `Bearer realm="…",service="…"` (one or more)."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        scheme, _, rest = rest.partition(" ")
        params: dict[str, str] = {}
        while True:
            match = _PARAM_RE.match(rest)
            if not match:
                break
            value = match.group(2) if match.group(2) is not None else match.group(3)
            params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[match.end():]
        challenges.append(Challenge(scheme.strip().lower(), params))
        rest = rest.lstrip(", ")
    return challenges


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def repository_scope(repository: str, actions: str) -> str:
    """`repository:NAME:pull` or `repository:NAME:pull,push`."""
    return f"repository:{repository}:{actions}"


# A token fetch: (url, headers) -> (status, body); the client provides it so that TLS and
# retries are the same as for the registry itself.
Fetch = Callable[[str, dict[str, str]], tuple[int, bytes]]


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Authorization headers for one registry, from its challenge and the saved credentials."""

    def __init__(self, registry: str, credentials: Credentials | None, fetch: Fetch) -> None:
        self.registry = registry
        self.credentials = credentials
        self._fetch = fetch
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()

    def set_challenge(self, header: str | None) -> None:
        """Records the challenge of the `/v2/` ping (None: the registry wants no auth)."""
        if not header:
            self._challenge = None
            return
        known = [c for c in parse_challenges(header) if c.scheme in ("basic", "bearer")]
        if not known:
            raise FailedPrecondition(f"registry {self.registry} asks for an unsupported "
                                     f"authentication scheme: {header}")
        # Prefer bearer: it is what registries that offer both expect clients to use.
        known.sort(key=lambda c: c.scheme != "bearer")
        self._challenge = known[0]

    @property
    def needs_auth(self) -> bool:
        return self._challenge is not None

    def header(self, scopes: tuple[str, ...], refresh: bool = False) -> str | None:
        """The Authorization value for a request needing scopes; refresh=True after a 401."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic_header(self.credentials) if self.credentials else None
        key = tuple(sorted(set(scopes)))
        with self._lock:
            token = self._tokens.get(key)
            if token is None or refresh or token.expires - REFRESH_MARGIN < time.monotonic():
                token = self._request_token(challenge, key)
                self._tokens[key] = token
        return f"Bearer {token.value}"

    def _request_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = challenge.params.get("realm")
        if not realm or not realm.startswith(("https://", "http://")):
            raise FailedPrecondition(f"registry {self.registry} sent a bearer challenge without a "
                                     "usable realm")
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        query += [("scope", s) for s in scopes]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": basic_header(self.credentials)} if self.credentials else {}
        started = time.monotonic()
        status, body = self._fetch(url, headers)
        if status in (401, 403):
            raise FailedPrecondition(f"authentication to registry {self.registry} failed: the "
                                     f"token server refused the credentials ({status})")
        if status != 200:
            raise FailedPrecondition(f"token server of registry {self.registry} answered {status}")
        try:
            answer = jsondoc.loads(body)
            value = answer.get("token") or answer.get("access_token")
            lifetime = int(answer.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            raise InvalidArgument(f"token server of registry {self.registry} sent an invalid "
                                  "answer") from None
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"token server of registry {self.registry} sent no token")
        return _Token(value, started + max(lifetime, 1))
