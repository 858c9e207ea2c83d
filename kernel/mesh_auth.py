"""Who may talk to a mesh service: settings, server-side caller identity, client credentials.

Three modes (`NOETL_MESH_AUTH`, docs/security.md):

- `token` (the default): every caller sends `authorization: Bearer <its token>`; a server knows
  callers by the SHA-256 digests in `NOETL_MESH_TOKENS_FILE` (lines `<identity> <hex digest>`), so
  a service that reads that file still cannot impersonate anyone.
- `mtls`: TLS with client certificates from files; a caller is the common name of its verified
  certificate. The server re-reads its certificate, key and CA bundle when the files change.

An identity is a caller kind (the policy's role: `gateway`, `worker`, ...), optionally with the
instance it names: `worker:<worker id>` is one worker process, which may act only as that worker
(kernel/mesh_guard.py `worker_refusal`).
- `off`: no authentication at all, only when asked for explicitly (a throwaway dev mesh).

Files are re-read when their modification time changes (checked at most once a second), so a
token or certificate is rotated by rewriting the file: no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel.config import EnvReader

log = logging.getLogger(__name__)

TOKEN = "token"
MTLS = "mtls"
OFF = "off"
MODES = (TOKEN, MTLS, OFF)
AUTHORIZATION = "authorization"
_RECHECK_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class MeshAuth:
    """This process's mesh identity and the files its credentials live in."""

    mode: str
    identity: str
    # token mode: this process's own token (as a client) and the accepted digests (as a server).
    token_file: str = ""
    tokens_file: str = ""
    # mtls mode: this process's certificate and key, and the CA bundle peers are verified against.
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    # mtls mode: an extra plaintext port that serves only health checks (kubelet probes speak no TLS).
    health_listen: str = ""

    @classmethod
    def off(cls, identity: str) -> MeshAuth:
        return cls(mode=OFF, identity=identity)

    @classmethod
    def read(cls, env: EnvReader, identity: str, *, serves: bool, calls: bool = True) -> MeshAuth:
        """Reads `NOETL_MESH_*`; a missing file for the chosen mode is reported, not defaulted.

        `serves`: the process hosts gRPC services; `calls`: it calls other services.
        """
        mode = env.text("NOETL_MESH_AUTH", TOKEN).lower()
        settings = cls(
            mode=mode,
            identity=env.text("NOETL_MESH_IDENTITY", identity),
            token_file=env.text("NOETL_MESH_TOKEN_FILE"),
            tokens_file=env.text("NOETL_MESH_TOKENS_FILE"),
            tls_cert=env.text("NOETL_MESH_TLS_CERT"),
            tls_key=env.text("NOETL_MESH_TLS_KEY"),
            tls_ca=env.text("NOETL_MESH_TLS_CA"),
            health_listen=env.text("NOETL_GRPC_HEALTH_LISTEN"),
        )
        if mode not in MODES:
            env.problem(f"NOETL_MESH_AUTH must be one of {', '.join(MODES)}, got {mode!r}")
            return settings
        required: list[tuple[str, str]] = []
        if mode == TOKEN:
            if calls:
                required.append(("NOETL_MESH_TOKEN_FILE", settings.token_file))
            if serves:
                required.append(("NOETL_MESH_TOKENS_FILE", settings.tokens_file))
        elif mode == MTLS:
            required += [
                ("NOETL_MESH_TLS_CERT", settings.tls_cert),
                ("NOETL_MESH_TLS_KEY", settings.tls_key),
                ("NOETL_MESH_TLS_CA", settings.tls_ca),
            ]
        for name, value in required:
            if not value:
                env.problem(
                    f"{name} is required with NOETL_MESH_AUTH={mode} (service-to-service authentication "
                    "is on by default; NOETL_MESH_AUTH=off turns it off for a throwaway dev mesh)"
                )
            elif not Path(value).is_file():
                env.problem(f"{name}: {value} is not a readable file")
        return settings


def role_of(identity: str) -> str:
    """The caller kind the policy judges: `worker:w-1` → `worker`."""
    return identity.partition(":")[0]


def instance_of(identity: str) -> str:
    """The one process an identity names (`worker:w-1` → `w-1`), empty for a shared identity."""
    return identity.partition(":")[2]


def token_digest(token: str) -> str:
    """The hex SHA-256 of a token: what a tokens file holds."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


class WatchedFile:
    """A small file's text, re-read when the file changes.

    A change is a new inode, size or modification time. Two writes within one tick of the file
    system's clock share a modification time; a file replaced atomically (how tokens files are
    written) has an inode other than the one it replaced.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._version: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._text = ""
        self.refresh(force=True)

    @property
    def path(self) -> str:
        return self._path

    def refresh(self, *, force: bool = False) -> bool:
        """Re-reads the file if it changed; True when the text is new. A vanished file keeps the last text.

        Raises:
            OSError: the first read (`force`) failed.
        """
        now = time.monotonic()
        if not force and now - self._checked < _RECHECK_SECONDS:
            return False
        self._checked = now
        try:
            found = os.stat(self._path)
            version = (found.st_ino, found.st_size, found.st_mtime_ns)
            if version == self._version:
                return False
            text = Path(self._path).read_text()
        except OSError:
            if force:
                raise
            log.warning("cannot re-read %s; keeping its previous contents", self._path)
            return False
        self._version = version
        self._text = text
        return True

    def text(self) -> str:
        self.refresh()
        return self._text


def parse_tokens(text: str) -> tuple[tuple[str, str], ...]:
    """(identity, digest) pairs of a tokens file; an identity may have several digests (rotation).

    Raises:
        ValueError: a line is not `<identity> <64 hex digits>`.
    """
    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64 or any(c not in "0123456789abcdef" for c in parts[1]):
            raise ValueError(f"line {number}: expected '<identity> <sha256 hex digest>'")
        pairs.append((parts[0], parts[1]))
    return tuple(pairs)


class TokenTable:
    """Accepted token digests by identity, from a tokens file that may change under us."""

    def __init__(self, path: str) -> None:
        self._file = WatchedFile(path)
        self._pairs = parse_tokens(self._file.text())

    def caller(self, token: str) -> str | None:
        """The identity whose token this is, or None; every entry is compared in constant time."""
        if self._file.refresh():
            try:
                self._pairs = parse_tokens(self._file.text())
            except ValueError as exc:
                log.error("%s is invalid (%s); keeping the previous tokens", self._file.path, exc)
        digest = token_digest(token)
        found: str | None = None
        for caller, expected in self._pairs:
            if hmac.compare_digest(digest, expected):
                found = caller
        return found


def bearer(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` entry, if any."""
    for key, value in metadata or ():
        if key == AUTHORIZATION and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def read_pem(path: str) -> bytes:
    return Path(path).read_bytes()
