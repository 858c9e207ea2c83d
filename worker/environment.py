"""What user code inherits from the worker: its environment without the worker's credentials.

`python` and `shell` steps run in child processes that inherit the worker's environment (and the
`secrets` tool's `env` provider reads it). The worker proves itself to the mesh with a token or a
key whose *path* is in its environment, and a local stack hands every process the cluster's
database DSN: user code must see neither. The worker reads its settings (and its token) first,
then takes these out of its own environment, so no child it starts later can inherit them.
"""

from __future__ import annotations

from collections.abc import MutableMapping

# All of mesh authentication: token and key paths, the digests file, the identity.
_MESH = "NOETL_MESH_"
# The platform's variables (ours and the bus's) that carry a credential or say where one is.
_PLATFORM = ("NOETL_", "NATS_")
_PRIVATE_WORDS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "DSN", "CERT", "CREDENTIAL", "CREDS")


def is_private(name: str) -> bool:
    upper = name.upper()
    return upper.startswith(_MESH) or (
        upper.startswith(_PLATFORM) and any(word in upper for word in _PRIVATE_WORDS)
    )


def scrub(environ: MutableMapping[str, str]) -> list[str]:
    """Removes the worker's private variables from `environ`; the names removed, sorted."""
    removed = sorted(name for name in environ if is_private(name))
    for name in removed:
        del environ[name]
    return removed
