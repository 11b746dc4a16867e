"""auth.json in the daemon's config dir: registry credentials in the `auths` form docker's
config.json and containers/image use (`{"auths": {"host": {"auth": base64("user:pass")}}}`).

The file is 0600 and replaced atomically; its content is never logged.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from isula_build.errors import InvalidArgument
from isula_build.image import jsondoc
from isula_build.store import inflight

AUTH_FILE = "auth.json"
MAX_AUTH_FILE = 1 << 20
_lock = threading.Lock()  # one writer at a time within the daemon


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # never print the secret, even in a traceback
        return f"Credentials(username={self.username!r}, password=***)"


class AuthFile:
    def __init__(self, config_dir: Path) -> None:
        self.path = config_dir / AUTH_FILE

    def _read(self) -> dict:
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_AUTH_FILE + 1)
        except FileNotFoundError:
            return {"auths": {}}
        if len(data) > MAX_AUTH_FILE:
            raise InvalidArgument(f"{self.path} is larger than 1 MiB")
        try:
            document = jsondoc.loads(data) if data.strip() else {}
        except ValueError:
            raise InvalidArgument(f"{self.path} is not valid JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("auths", {}), dict):
            raise InvalidArgument(f'{self.path} has no "auths" object')
        document.setdefault("auths", {})
        return document

    def _write(self, document: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        inflight.replace_file(self.path, json.dumps(document, indent="\t").encode(), 0o600)

    def get(self, registry: str) -> Credentials | None:
        entry = self._read()["auths"].get(registry)
        if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
            return None
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(f'{self.path}: the entry of "{registry}" is not valid') from None
        return Credentials(user, password) if sep else None

    def set(self, registry: str, credentials: Credentials) -> None:
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        with _lock:
            document = self._read()
            document["auths"][registry] = {"auth": token}
            self._write(document)

    def remove(self, registry: str) -> bool:
        """False when there was nothing to remove."""
        with _lock:
            document = self._read()
            if registry not in document["auths"]:
                return False
            del document["auths"][registry]
            self._write(document)
            return True

    def remove_all(self) -> None:
        with _lock:
            if self.path.exists():
                document = self._read()
                document["auths"] = {}
                self._write(document)
