"""An OIDC issuer for tests: signing keys the test makes, their JWKS (a file or served over real
HTTP) and tokens with any claims, including wrong ones."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.test/"
AUDIENCE = "https://noetl.test/api"


@dataclass
class Issuer:
    """Keys by key id; `jwks()` publishes their public halves."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    fetches: int = 0

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        published = []
        for kid, key in self.keys.items():
            jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            published.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": published}

    def write_jwks(self, path: Path) -> Path:
        staging = path.with_name(path.name + ".new")
        staging.write_text(json.dumps(self.jwks()))
        staging.replace(path)
        return path

    def token(
        self,
        *,
        kid: str = "k1",
        scope: str | None = None,
        claims: Mapping[str, Any] | None = None,
        signer: rsa.RSAPrivateKey | None = None,
        expires_in: int = 300,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "iat": now,
            "exp": now + expires_in,
        }
        if scope is not None:
            payload["scope"] = scope
        payload.update(claims or {})
        return jwt.encode(payload, signer or self.keys[kid], algorithm="RS256", headers={"kid": kid})


@contextmanager
def served_jwks(issuer: Issuer) -> Iterator[str]:
    """The issuer's JWKS over real HTTP on an ephemeral port; yields its URL (each GET counted)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.fetches += 1
            body = json.dumps(issuer.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test output is not the place for access logs."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="jwks", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
