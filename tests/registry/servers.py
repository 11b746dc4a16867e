"""Real registries for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1,
plain HTTP, htpasswd over TLS with a CA of the test's own, or token auth with the small token
server below."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

with warnings.catch_warnings():
    # Deprecated (removed in 3.13), but it makes bcrypt hashes with no extra package.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class CertPair:
    cert: Path
    key: Path


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


def make_ca(directory: Path) -> tuple[CertPair, rsa.RSAPrivateKey, x509.Certificate]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "isb-test-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / "ca.crt", directory / "ca.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair, key, cert


def make_server_cert(directory: Path, ca_key: rsa.RSAPrivateKey, ca: x509.Certificate,
                     name: str = "server") -> CertPair:
    import ipaddress

    key = _key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    # bcrypt ($2b$) is the only hash distribution's htpasswd accepts; the standard library's
    # crypt module makes it, so the tests need no extra package.
    lines = [f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}"
             for user, password in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Registry:
    root: Path
    port: int
    tls: CertPair | None = None
    htpasswd: Path | None = None
    token: "TokenServer | None" = None
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [
            "version: 0.1",
            "log:", "  level: warn",
            "storage:", "  filesystem:", f"    rootdirectory: {self.root / 'data'}",
            "  delete:", "    enabled: true",
            "http:", f"  addr: 127.0.0.1:{self.port}",
        ]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls.cert}", f"    key: {self.tls.key}"]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: isb-test", f"    path: {self.htpasswd}"]
        if self.token:
            lines += ["auth:", "  token:", f"    realm: {self.token.url}/token",
                      f"    service: {self.token.service}", f"    issuer: {self.token.issuer}",
                      f"    rootcertbundle: {self.token.cert_path}"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "config.yml"
        conf.write_text(self.config())
        log = open(self.root / "registry.log", "ab")
        self.process = subprocess.Popen([REGISTRY_BIN, "serve", str(conf)], stdout=log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("registry exited: " + (self.root / "registry.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("registry did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def blob_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return (self.root / "data/docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """docker's token protocol: GET /token?service=…&scope=… with basic auth → a JWT signed
    with a key whose certificate the registry trusts (rootcertbundle), sent in the x5c header."""

    directory: Path
    users: dict[str, str]
    service: str = "isb-test-registry"
    issuer: str = "isb-test-issuer"
    lifetime: int = 300
    requests: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "isb-test-token")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self._cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                      .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                      .not_valid_before(now - datetime.timedelta(days=1))
                      .not_valid_after(now + datetime.timedelta(days=2))
                      .sign(self._key, hashes.SHA256()))
        self.cert_path = self.directory / "token.crt"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                user = server._user(self.headers.get("Authorization"))
                server.requests.append({"user": user, "scope": query.get("scope", []),
                                        "service": query.get("service", [""])[0]})
                if user is False:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": server.issue(user or "", query.get("scope", [])),
                                   "expires_in": server.lifetime}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def _user(self, header: str | None) -> str | None | bool:
        """The user name, None when anonymous, False when the credentials are wrong."""
        if not header:
            return None
        user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
        return user if self.users.get(user) == password else False

    def issue(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")[0], ":".join(scope.split(":")[1:-1]), \
                scope.split(":")[-1]
            # Anonymous users may pull only; named users may do everything.
            granted = [a for a in actions.split(",") if user or a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER))
                          .decode()]}
        claims = {"iss": self.issuer, "sub": user, "aud": self.service, "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{_b64url(signature)}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _Listener:
    """A TCP server on 127.0.0.1 that hands each connection to _connected on a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._connected(client)

    def _connected(self, client: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._listener.close()


class CuttingProxy(_Listener):
    """A TCP proxy to a registry that cuts one connection once it has carried `cut_after` bytes
    in one direction ("up": client to registry, "down": registry to client)."""

    def __init__(self, target_port: int, cut_after: int, direction: str) -> None:
        self.cuts = 0
        self._target = target_port
        self._cut_after = cut_after
        self._direction = direction
        self._armed = True
        self._lock = threading.Lock()
        super().__init__()

    def _connected(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._target))
        state = {"up": 0, "down": 0, "cut": False}
        for src, dst, name in ((client, upstream, "up"), (upstream, client, "down")):
            threading.Thread(target=self._pump, args=(src, dst, name, state, client, upstream),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, name: str, state: dict,
              client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                state[name] += len(data)
                if name == self._direction and state[name] > self._cut_after:
                    with self._lock:
                        cut = self._armed
                        self._armed = False
                    if cut:
                        self.cuts += 1
                        raise OSError("cut")
                dst.sendall(data)
        except OSError:
            pass
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class _RequestProxy(_Listener):
    """A proxy that sees each connection's first request (the registry client opens one
    connection a request) and answers it in _answer, on a thread of its own."""

    def _connected(self, client: socket.socket) -> None:
        threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = _request_head(client)
            if head is not None:
                self._answer(client, head, head.split(b"\r\n", 1)[0].decode())

    def _answer(self, client: socket.socket, head: bytes, line: str) -> None:
        raise NotImplementedError


class KillingProxy(_RequestProxy):
    """Forwards each connection (the registry client opens one a request) to `registry`
    until a request GETs one of `blobs`: then the registry is stopped and the connection cut
    (a registry going down in the middle of a build's import)."""

    def __init__(self, registry: Registry, blobs: set[str]) -> None:
        self.registry = registry
        self.blobs = blobs
        self.killed = False
        super().__init__()

    def _answer(self, client: socket.socket, head: bytes, line: str) -> None:
        if self.killed or (line.startswith("GET ") and any(blob in line for blob in self.blobs)):
            self.killed = True
            self.registry.stop()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.registry.port))
        except OSError:
            return
        with upstream:
            upstream.sendall(head)
            _relay(client, upstream)


def _request_head(client: socket.socket) -> bytes | None:
    """The request line and headers; None when the client closes first or starts a TLS
    handshake (plain HTTP only, as a registry without TLS answers)."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(65536)
        if not data or head + data[:1] == b"\x16":
            return None
        head += data
    return head


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Both directions until each side is done."""
    back = threading.Thread(target=_forward, args=(client, upstream), daemon=True)
    back.start()
    _forward(upstream, client)
    back.join()


class BlobProxy(_RequestProxy):
    """Forwards each connection (one request each, as the registry client makes them) to
    `registry`, except for the blob GETs it was told about:
    - a GET of one of `held` waits until a GET of one of `opening` has been answered in full
      (or `timeout` seconds: then `timed_out` is set), so a test can tell which came first;
    - a GET of one of `corrupt` is answered with one byte of the body changed."""

    def __init__(self, registry: Registry, held: Iterable[str] = (),
                 opening: Iterable[str] = (), corrupt: Iterable[str] = (),
                 timeout: float = 30.0) -> None:
        self.registry = registry
        self.held, self.opening, self.corrupt = set(held), set(opening), set(corrupt)
        self.timeout = timeout
        self.opened = threading.Event()
        self.timed_out = False
        self.corrupted = 0
        super().__init__()

    def _answer(self, client: socket.socket, head: bytes, line: str) -> None:
        def names(blobs: set[str]) -> bool:
            return line.startswith("GET ") and any(blob in line for blob in blobs)

        if names(self.held) and not self.opened.wait(self.timeout):
            self.timed_out = True
        with socket.create_connection(("127.0.0.1", self.registry.port)) as upstream:
            upstream.sendall(head)
            if names(self.corrupt):
                self._send_corrupted(upstream, client)
                return
            _relay(client, upstream)
        if names(self.opening):
            self.opened.set()

    def _send_corrupted(self, upstream: socket.socket, client: socket.socket) -> None:
        response = b""
        while b"\r\n\r\n" not in response:
            response += upstream.recv(65536)
        head, _, body = response.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += upstream.recv(65536)
        body = bytearray(body)
        body[length // 2] ^= 0xFF
        self.corrupted += 1
        client.sendall(head + b"\r\n\r\n" + bytes(body))


def _forward(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class GarbageServer:
    """Answers every connection with bytes that are not HTTP, or (http=True) a registry ping
    that succeeds followed by manifests that are not JSON (or `body`)."""

    def __init__(self, http: bool, body: bytes = b"\x00\xffnot json at all") -> None:
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._http = http
        self._body = body
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(65536)
                    if self._http:
                        body = self._body
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                     % (len(body), body))
                    else:
                        conn.sendall(b"\x16\x03garbage garbage garbage\r\n\r\n")
                except OSError:
                    pass

    def stop(self) -> None:
        self._listener.close()
