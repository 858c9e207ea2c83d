"""The local stack's service-to-service credentials: one token per process, made at every `up`.

Mesh authentication is on by default (kernel/mesh_auth.py), so a local stack needs
tokens a newcomer never sees: `up` writes a fresh random token per process to
`<run dir>/mesh-auth/<process>.token` and their SHA-256 digests, each under the process's identity,
to `<run dir>/mesh-auth/tokens` (directory 0700, files 0600). A service process's identity is its
caller (`execution-2`, shard 2's execution process, is caller `execution`); a worker process's is
`worker:<worker id>`, so its token proves which worker it is and the services let it claim,
report and resolve only as that worker. Each process gets only its own token file; every server
gets the digests. A caller who configured mesh auth itself (NOETL_MESH_AUTH or
NOETL_MESH_TOKENS_FILE) gets nothing added.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kernel.grpc_client import ClientAuth
from kernel.mesh_auth import TOKEN, MeshAuth, token_digest
from kernel.mesh_policy import LAUNCHER, WORKER

AUTH_DIR = Path("mesh-auth")
# The gateway's bearer token for `run`, `list` and `show` when HTTP auth is on: the variable the
# `noetl` CLI reads too (docs/security.md).
GATEWAY_TOKEN_ENV = "NOETL_SESSION_TOKEN"
TOKENS_FILE = "tokens"
_CALLER_KEYS = ("NOETL_MESH_AUTH", "NOETL_MESH_TOKENS_FILE")


@dataclass(frozen=True)
class MeshCredentials:
    directory: Path

    def shared(self) -> dict[str, str]:
        return {"NOETL_MESH_AUTH": TOKEN, "NOETL_MESH_TOKENS_FILE": str(self.directory / TOKENS_FILE)}

    def for_process(self, process: str) -> dict[str, str]:
        """The identity and the token file of `process` (a caller's one process, or one shard's
        process of it: `execution-2` calls as `execution` with its own token; a worker process
        calls as `worker:<its worker id>`, and the worker takes its id from that identity)."""
        return {
            "NOETL_MESH_IDENTITY": identity_of(process),
            "NOETL_MESH_TOKEN_FILE": str(token_file(self.directory, process)),
        }


def token_file(directory: Path, identity: str) -> Path:
    return directory / f"{identity}.token"


def caller_of(process: str) -> str:
    """The policy's caller a process of the stack calls as: a shard's process (`execution-2`) is its
    component's caller (`execution`), like every pod of the shard StatefulSet in Kubernetes."""
    base, _, index = process.rpartition("-")
    return base if base and index.isdigit() else process


def identity_of(process: str) -> str:
    """The identity a process of the stack proves: a worker process is one worker
    (`worker:<host>-worker`, the worker id it claims under), any other its caller."""
    caller = caller_of(process)
    return f"{WORKER}:{socket.gethostname()}-{process}" if caller == WORKER else caller


def mesh_credentials(
    run_dir: Path, base_env: Mapping[str, str], processes: Iterable[str]
) -> MeshCredentials | None:
    """Fresh tokens for `processes` (and the launcher's own), unless the caller configured mesh auth."""
    if any(base_env.get(name, "").strip() for name in _CALLER_KEYS):
        return None
    directory = run_dir / AUTH_DIR
    write_tokens(directory, {process: identity_of(process) for process in {*processes, LAUNCHER}})
    return MeshCredentials(directory)


def current_credentials(run_dir: Path, base_env: Mapping[str, str]) -> MeshCredentials | None:
    """The tokens the last `up` made, for restarting one process: new ones would strand the rest."""
    if any(base_env.get(name, "").strip() for name in _CALLER_KEYS):
        return None
    directory = run_dir / AUTH_DIR
    return MeshCredentials(directory) if (directory / TOKENS_FILE).is_file() else None


def write_tokens(directory: Path, identities: Mapping[str, str]) -> None:
    """A fresh token per process (`<process>.token`) and their digests (`tokens`, each under the
    process's identity: an identity may have several), all private.

    Also what `noetl-mesh tokens DIR` writes for a Kubernetes Secret (docs/security.md).
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    lines = []
    for process, identity in sorted(identities.items()):
        token = secrets.token_urlsafe(32)
        _write_private(token_file(directory, process), token + "\n")
        lines.append(f"{identity} {token_digest(token)}\n")
    _write_private(directory / TOKENS_FILE, "".join(lines))


def add_worker(directory: Path, worker_id: str) -> dict[str, str]:
    """Issues a token for one more worker process of a running stack (`worker:<worker_id>`) and
    returns its mesh variables; servers pick the new digest up within a second (no restart)."""
    identity = f"{WORKER}:{worker_id}"
    token = secrets.token_urlsafe(32)
    path = token_file(directory, f"{WORKER}@{worker_id}")
    _write_private(path, token + "\n")
    tokens = directory / TOKENS_FILE
    _write_private(tokens, tokens.read_text() + f"{identity} {token_digest(token)}\n")
    return {"NOETL_MESH_IDENTITY": identity, "NOETL_MESH_TOKEN_FILE": str(path)}


def launcher_token(run_dir: Path) -> Path | None:
    """The token `noetl-mesh run` follows events with, when the stack made one."""
    path = token_file(run_dir / AUTH_DIR, LAUNCHER)
    return path if path.is_file() else None


def launcher_auth(run_dir: Path) -> ClientAuth:
    """How the launcher calls the mesh: its own token when the stack made one, else no mesh auth."""
    token = launcher_token(run_dir)
    if token is None:
        return ClientAuth.off()
    return ClientAuth(MeshAuth(mode=TOKEN, identity=LAUNCHER, token_file=str(token)))


def _write_private(path: Path, text: str) -> None:
    """Replaces `path` atomically; the new file is 0600 from the start."""
    staging = path.with_name(path.name + ".new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(staging, path)
