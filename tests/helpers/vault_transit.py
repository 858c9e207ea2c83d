"""A Vault-Transit-compatible stand-in HTTP server, for testing the `vault-transit` KEK provider.

No Vault server can run on the test machines, so this speaks just the part of the Transit API
that hvac's `secrets.transit` calls use: `POST /v1/<mount>/encrypt/<key>`, `.../decrypt/<key>`,
`.../rewrap/<key>` and `GET /v1/<mount>/keys/<key>`, with `X-Vault-Token` checked and Vault's
`{"errors": [...]}` bodies. Ciphertexts look like Vault's (`vault:v<N>:<base64>`) and are real
AES-256-GCM under one key per version; `rotate()` adds a version, as `transit/keys/<key>/rotate`
would. It is a test double, not a security boundary.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN = "stand-in-root-token"


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class TransitStandIn:
    """The state: named keys with versions, and a count of requests per operation."""

    def __init__(self, mount: str = "transit", token: str = TOKEN) -> None:
        self.mount = mount
        self.token = token
        self._keys: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        self.calls: collections.Counter[str] = collections.Counter()
        self.url = ""

    def create_key(self, name: str) -> None:
        with self._lock:
            self._keys.setdefault(name, [os.urandom(32)])

    def rotate(self, name: str) -> int:
        """Adds a key version; returns the new latest version."""
        with self._lock:
            self._keys[name].append(os.urandom(32))
            return len(self._keys[name])

    def latest_version(self, name: str) -> int:
        with self._lock:
            return len(self._keys[name])

    # --- operations -------------------------------------------------------------------------

    def _versions(self, name: str) -> list[bytes]:
        versions = self._keys.get(name)
        if versions is None:
            raise _BadRequest(400, "encryption key not found")
        return versions

    def _encrypt(self, name: str, plaintext: bytes, version: int | None = None) -> str:
        versions = self._versions(name)
        number = version or len(versions)
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(versions[number - 1]).encrypt(nonce, plaintext, None)
        return f"vault:v{number}:{base64.b64encode(sealed).decode()}"

    def _decrypt(self, name: str, ciphertext: str) -> bytes:
        versions = self._versions(name)
        parts = ciphertext.split(":", 2)
        if len(parts) != 3 or parts[0] != "vault" or not parts[1][:1] == "v" or not parts[1][1:].isdigit():
            raise _BadRequest(400, "invalid ciphertext: no prefix")
        number = int(parts[1][1:])
        if not 1 <= number <= len(versions):
            raise _BadRequest(400, "invalid ciphertext: key version not found")
        encoded = parts[2]
        raw = base64.b64decode(encoded)
        try:
            return AESGCM(versions[number - 1]).decrypt(raw[:12], raw[12:], None)
        except InvalidTag:
            raise _BadRequest(400, "cipher: message authentication failed") from None

    def handle(self, method: str, path: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        """Raises _BadRequest with Vault's status and message."""
        if token != self.token:
            raise _BadRequest(403, "permission denied")
        parts = path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "v1" or parts[1] != self.mount:
            raise _BadRequest(404, f"no handler for route {path!r}")
        _, _, operation, name = parts
        with self._lock:
            self.calls[operation] += 1
            if method == "GET" and operation == "keys":
                versions = self._versions(name)
                return {"data": {"name": name, "type": "aes256-gcm96", "latest_version": len(versions)}}
            if method != "POST":
                raise _BadRequest(405, "unsupported operation")
            if operation == "encrypt":
                plaintext = base64.b64decode(str(body["plaintext"]))
                return {"data": {"ciphertext": self._encrypt(name, plaintext)}}
            if operation == "decrypt":
                plaintext = self._decrypt(name, str(body["ciphertext"]))
                return {"data": {"plaintext": base64.b64encode(plaintext).decode()}}
            if operation == "rewrap":
                plaintext = self._decrypt(name, str(body["ciphertext"]))
                return {"data": {"ciphertext": self._encrypt(name, plaintext)}}
        raise _BadRequest(404, f"unsupported path {path!r}")


def _handler(state: TransitStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else {}
                answer = state.handle(self.command, self.path, self.headers.get("x-vault-token"), body)
                status, payload = 200, answer
            except _BadRequest as exc:
                status, payload = exc.status, {"errors": [str(exc)]}
            except (ValueError, KeyError) as exc:
                status, payload = 400, {"errors": [f"bad request: {exc}"]}
            encoded = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        do_GET = _answer
        do_POST = _answer
        do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test output is not the place for access logs."""

    return Handler


@contextmanager
def transit_stand_in(mount: str = "transit") -> Iterator[TransitStandIn]:
    """A running stand-in on an ephemeral port; `state.url` is its address (VAULT_ADDR)."""
    state = TransitStandIn(mount)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="vault-transit-stand-in", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
