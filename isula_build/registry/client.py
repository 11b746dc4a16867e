"""Requests to one registry (Docker Registry HTTP API v2 / OCI distribution spec).

Everything streams: blob downloads are read by the caller as they arrive (and resumed with a
Range request when the connection drops), uploads are sent with chunked transfer encoding as
the caller produces them, so no layer is ever held in memory. Idempotent requests are retried on
transient failures; an upload is restarted from a new session. Redirects are followed for blob
downloads (registries send them to storage backends), without the Authorization header when the
redirect leaves the registry's host.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from isula_build.errors import (FailedPrecondition, InvalidArgument, IsulaBuildError, NotFound,
                                RegistryUnavailable)
from isula_build.image import jsondoc
from isula_build.image import mediatypes
from isula_build.image.digest import digest_of, is_digest
from isula_build.registry.auth import MAX_TOKEN_ANSWER, Authenticator, repository_scope
from isula_build.registry.credentials import Credentials
from isula_build.registry.names import DOCKER_HUB, DOCKER_HUB_API
from isula_build.registry.tls import ssl_context, system_context

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # the buffer type io's stubs give readinto

_log = logging.getLogger(__name__)
T = TypeVar("T")

TIMEOUT = 60.0            # seconds without progress on a connection
ATTEMPTS = 3              # tries of an idempotent request or an upload
BACKOFF = 0.5             # seconds before the second try, doubled each time
MAX_REDIRECTS = 10
MAX_MANIFEST = 4 << 20    # the distribution spec's suggested manifest limit
MAX_SMALL_BLOB = 64 << 20  # configs
MAX_ERROR_BODY = 64 << 10
MANIFEST_ACCEPT = ", ".join([mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST_LIST,
                             mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST])
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT = (OSError, http.client.HTTPException)  # connection refused/reset, cut streams, ...


class _Retry(Exception):
    """A response status worth another try."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: str


def _error_text(response: http.client.HTTPResponse) -> str:
    """The registry's error (`{"errors": [{"code", "message"}]}`) or the status line."""
    try:
        body = response.read(MAX_ERROR_BODY)
        errors = jsondoc.loads(body).get("errors") or []
        text = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                         for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError, *_TRANSIENT):
        text = ""
    return text or f"{response.status} {response.reason}"


class RegistryClient:
    """One registry. `push=True` asks for push scopes (the token then covers pull and push)."""

    def __init__(self, registry: str, config_dir: Path, insecure: bool,
                 credentials: Credentials | None, push: bool = False,
                 timeout: float = TIMEOUT) -> None:
        self.registry = registry
        self.insecure = insecure
        self.push = push
        self.timeout = timeout
        self._config_dir = config_dir
        self._host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self._base: str | None = None  # "https://host" or "http://host" once pinged
        self._context: ssl.SSLContext | None = None
        self.auth = Authenticator(registry, credentials, self._fetch_token)

    # ---------------------------------------------------------------------------- connections

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        if scheme == "https":
            # The registry's TLS settings serve its token server and redirects too, as in
            # containers/image (one HTTP client per registry).
            context = self._context or system_context()
            return http.client.HTTPSConnection(netloc, timeout=self.timeout, context=context)
        return http.client.HTTPConnection(netloc, timeout=self.timeout)

    def _send(self, method: str, url: str, headers: dict[str, str],
              body: bytes | Iterable[bytes] | None = None) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        conn = self._connection(parts.scheme, parts.netloc)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            if body is not None and not isinstance(body, bytes):
                conn.request(method, target, body=body, headers=headers, encode_chunked=True)
            else:
                conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        # The response keeps the socket open until it is read; closing it closes the connection.
        return response

    def _fetch_token(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        def once() -> tuple[int, bytes]:
            response = self._send("GET", url, headers)
            with response:
                return response.status, response.read(MAX_TOKEN_ANSWER)
        return self._retrying(once, f"token server for {self.registry}")

    def _retrying(self, attempt: Callable[[], T], what: str) -> T:
        delay = BACKOFF
        for n in range(1, ATTEMPTS + 1):
            try:
                return attempt()
            except (_Retry, *_TRANSIENT) as exc:
                if isinstance(exc, ssl.SSLCertVerificationError):
                    raise FailedPrecondition(f"registry {self.registry}: TLS certificate not "
                                             f"trusted: {exc.verify_message}") from None
                if isinstance(exc, ssl.SSLError):
                    # Not transient: e.g. a plain HTTP server answering a TLS handshake.
                    raise FailedPrecondition(f"registry {self.registry}: TLS failed: "
                                             f"{exc.reason or exc}") from None
                if n == ATTEMPTS:
                    raise RegistryUnavailable(f"{what}: {exc or type(exc).__name__} "
                                              f"(after {ATTEMPTS} tries)") from None
                _log.info("%s failed (%s), trying again in %.1f s", what, exc, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------------------------ ping

    def ping(self) -> None:
        """Finds how to talk to the registry (https, or http when insecure) and its challenge."""
        if self._base is not None:
            return
        tries: list[tuple[str, ssl.SSLContext | None]] = [
            ("https", ssl_context(self._config_dir, self.registry, verify=not self.insecure))]
        if self.insecure:
            tries.append(("http", None))
        problems: list[str] = []
        for scheme, context in tries:
            self._context = context
            url = f"{scheme}://{self._host}/v2/"
            try:
                response = self._retrying(lambda: self._send("GET", url, {}),
                                          f"ping of registry {self.registry}")
            except RegistryUnavailable as exc:
                problems.append(f"{scheme}: {exc}")
                continue
            except FailedPrecondition as exc:
                if self.insecure:
                    problems.append(f"{scheme}: {exc}")
                    continue
                raise
            with response:
                response.read(MAX_ERROR_BODY)
                if response.status == 401:
                    self.auth.set_challenge(response.getheader("WWW-Authenticate"))
                elif response.status != 200:
                    raise InvalidArgument(f"{self.registry} does not look like a registry: "
                                          f"GET /v2/ answered {response.status} {response.reason}")
            self._base = f"{scheme}://{self._host}"
            return
        raise RegistryUnavailable(f"cannot reach registry {self.registry}: " + "; ".join(problems))

    def check_login(self) -> None:
        """Raises FailedPrecondition unless the credentials are accepted by the registry."""
        self.ping()
        if not self.auth.needs_auth:
            return
        if self.auth.credentials is None:
            raise FailedPrecondition(f"registry {self.registry} needs credentials")
        response = self.request("GET", "/v2/", scopes=(), expect=(200, 401))
        with response:
            response.read(MAX_ERROR_BODY)
            if response.status != 200:
                raise FailedPrecondition(f"login to {self.registry} failed: wrong username or "
                                         "password (401 Unauthorized)")

    # -------------------------------------------------------------------------------- requests

    def scopes(self, repository: str, mount_from: str | None = None) -> tuple[str, ...]:
        actions = "pull,push" if self.push else "pull"
        scopes = [repository_scope(repository, actions)]
        if mount_from and mount_from != repository:
            scopes.append(repository_scope(mount_from, "pull"))
        return tuple(scopes)

    def _url(self, path_or_url: str) -> str:
        assert self._base is not None
        return urllib.parse.urljoin(self._base + "/", path_or_url)

    def request(self, method: str, path: str, scopes: tuple[str, ...],
                headers: dict[str, str] | None = None, body: bytes | None = None,
                expect: tuple[int, ...] = (200,), follow: bool = False) -> http.client.HTTPResponse:
        """One idempotent (replayable) request: auth, retries, redirects. Statuses other than
        `expect` become errors; the caller reads and closes the response."""
        self.ping()
        url = self._url(path)
        what = f"{method} {urllib.parse.urlsplit(url).path} on {self.registry}"

        def attempt() -> http.client.HTTPResponse:
            current, refreshed = url, False
            for _ in range(MAX_REDIRECTS + 1):
                sent = dict(headers or {})
                own_host = urllib.parse.urlsplit(current).netloc == self._host
                auth = self.auth.header(scopes, refresh=refreshed) if own_host else None
                if auth:
                    sent["Authorization"] = auth
                response = self._send(method, current, sent, body)
                status = response.status
                if status == 401 and own_host and self.auth.needs_auth and not refreshed \
                        and 401 not in expect:
                    response.read(MAX_ERROR_BODY)
                    response.close()
                    refreshed = True  # an expired token: fetch a new one once
                    continue
                if follow and status in (301, 302, 303, 307, 308):
                    location = response.getheader("Location")
                    response.read(MAX_ERROR_BODY)
                    response.close()
                    if not location:
                        raise InvalidArgument(f"{what}: redirect without a Location")
                    current = urllib.parse.urljoin(current, location)
                    continue
                if status in _RETRY_STATUSES and status not in expect:
                    text = _error_text(response)
                    response.close()
                    raise _Retry(status, text)
                return response
            raise InvalidArgument(f"{what}: more than {MAX_REDIRECTS} redirects")

        response = self._retrying(attempt, what)
        if response.status not in expect:
            self._fail(response, what)
        return response

    def _fail(self, response: http.client.HTTPResponse, what: str) -> None:
        text = _error_text(response)
        response.close()
        if response.status == 404:
            raise NotFound(f"{what}: {text}")
        if response.status in (401, 403):
            raise FailedPrecondition(f"{what}: access denied ({text}); log in with "
                                     f"`isula-build login {self.registry}`")
        raise IsulaBuildError(f"{what}: {text}")

    # ------------------------------------------------------------------------------- manifests

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                                self.scopes(repository), {"Accept": MANIFEST_ACCEPT})
        with response:
            data = response.read(MAX_MANIFEST + 1)
            media_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        if len(data) > MAX_MANIFEST:
            raise InvalidArgument(f"manifest {repository}:{reference} is larger than 4 MiB")
        digest = digest_of(data)
        if is_digest(reference) and digest != reference:
            raise InvalidArgument(f"manifest {repository}@{reference}: the registry sent content "
                                  f"with digest {digest}")
        try:
            declared = jsondoc.loads(data).get("mediaType")
        except (ValueError, AttributeError):
            raise InvalidArgument(f"manifest {repository}:{reference} is not valid JSON") from None
        return Manifest(data, declared or media_type, digest)

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}",
                                self.scopes(repository), {"Content-Type": media_type},
                                body=data, expect=(200, 201))
        with response:
            response.read(MAX_ERROR_BODY)
        return digest_of(data)

    # ----------------------------------------------------------------------------------- blobs

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                                self.scopes(repository), expect=(200, 404), follow=True)
        response.close()
        return response.status == 200

    def get_small_blob(self, repository: str, digest: str) -> bytes:
        """A config, read whole and checked against its digest."""
        with self.open_blob(repository, digest) as blob:
            data = blob.read(MAX_SMALL_BLOB + 1)
        if len(data) > MAX_SMALL_BLOB:
            raise InvalidArgument(f"blob {digest} of {repository} is larger than 64 MiB")
        if digest_of(data) != digest:
            raise InvalidArgument(f"blob {digest} of {repository}: the registry sent content "
                                  f"with digest {digest_of(data)}")
        return data

    def open_blob(self, repository: str, digest: str) -> BinaryIO:
        """A stream of the blob's bytes as stored (the caller verifies the digest)."""
        return _ResumingBlob(self, repository, digest)  # type: ignore[return-value]  # a RawIOBase is a binary stream

    def _get_blob(self, repository: str, digest: str, offset: int) -> http.client.HTTPResponse:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.request("GET", f"/v2/{repository}/blobs/{digest}", self.scopes(repository),
                            headers, expect=(206,) if offset else (200,), follow=True)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; True when the registry mounted it (201)."""
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/?{query}",
                                self.scopes(repository, from_repository), body=b"",
                                expect=(201, 202))
        with response:
            response.read(MAX_ERROR_BODY)
            location = response.getheader("Location")
        if response.status == 202 and location:
            # The registry opened an upload instead; drop it (a leftover would expire anyway).
            try:
                self.request("DELETE", location, self.scopes(repository),
                             expect=(204, 404)).close()
            except IsulaBuildError:
                pass
        return response.status == 201

    def upload_blob(self, repository: str, produce: Callable[[], Iterator[bytes]],
                    expected: str | None = None) -> tuple[str, int]:
        """Uploads the bytes produce() yields (called again for each new try) with one chunked
        PATCH; returns their digest and size. expected: the digest they must have."""
        what = f"upload of a blob to {self.registry}/{repository}"

        def attempt() -> tuple[str, int]:
            start = self.request("POST", f"/v2/{repository}/blobs/uploads/",
                                 self.scopes(repository), body=b"", expect=(202,))
            with start:
                start.read(MAX_ERROR_BODY)
                location = start.getheader("Location")
            if not location:
                raise InvalidArgument(f"{what}: the registry gave no upload location")
            hasher = hashlib.sha256()
            size = 0

            def body() -> Iterator[bytes]:
                nonlocal size
                for chunk in produce():
                    hasher.update(chunk)
                    size += len(chunk)
                    yield chunk

            headers = {"Content-Type": "application/octet-stream"}
            auth = self.auth.header(self.scopes(repository))
            if auth:
                headers["Authorization"] = auth
            patch = self._send("PATCH", self._url(location), headers, body())
            with patch:
                if patch.status == 401 and self.auth.needs_auth:
                    # The token expired during the upload: a new one for the next try.
                    self.auth.header(self.scopes(repository), refresh=True)
                    raise _Retry(patch.status, _error_text(patch))
                if patch.status in _RETRY_STATUSES:
                    raise _Retry(patch.status, _error_text(patch))
                if patch.status != 202:
                    self._fail(patch, what)
                patch.read(MAX_ERROR_BODY)
                location = patch.getheader("Location") or location
            digest = f"sha256:{hasher.hexdigest()}"
            if expected is not None and digest != expected:
                raise InvalidArgument(f"{what}: the content has digest {digest}, not {expected}")
            separator = "&" if "?" in location else "?"
            done = self.request("PUT", f"{location}{separator}digest={digest}",
                                self.scopes(repository), body=b"", expect=(201, 204))
            done.close()
            return digest, size

        return self._retrying(attempt, what)

    def put_small_blob(self, repository: str, data: bytes) -> str:
        """A monolithic upload (configs): POST, then one PUT with the body and its digest."""
        digest = digest_of(data)
        if self.blob_exists(repository, digest):
            return digest
        return self.upload_blob(repository, lambda: iter([data]), digest)[0]


class _ResumingBlob(io.RawIOBase):
    """A blob download that picks up where it stopped (Range request) when the connection drops."""

    def __init__(self, client: RegistryClient, repository: str, digest: str) -> None:
        super().__init__()
        self._client = client
        self._repository = repository
        self._digest = digest
        self._offset = 0
        self._resumes = 0
        self._response: http.client.HTTPResponse | None = client._get_blob(repository, digest, 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while True:
            if self._response is None:
                self._response = self._client._get_blob(self._repository, self._digest,
                                                        self._offset)
            try:
                n = self._response.readinto(buffer)
                if n == 0 and memoryview(buffer).nbytes and self._response.length:
                    # http.client returns 0, not an error, when a connection closes before
                    # Content-Length bytes came.
                    raise http.client.IncompleteRead(b"", self._response.length)
            except _TRANSIENT as exc:
                self._response.close()
                self._response = None
                self._resumes += 1
                if self._resumes > ATTEMPTS:
                    raise RegistryUnavailable(
                        f"download of blob {self._digest} from {self._client.registry} keeps "
                        f"failing: {exc}") from None
                _log.info("blob %s: connection lost at %d bytes (%s), resuming",
                          self._digest, self._offset, exc)
                continue
            self._offset += n
            return n

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        super().close()
