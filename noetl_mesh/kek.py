"""The local stack's key-encryption key: made once per run dir, kept across restarts.

The secrets wallet refuses to start without `NOETL_ENCRYPTION_KEY` (data-model.md §9.3). A
local mesh needs a key that survives `down`/`up`, or every stored credential becomes unreadable,
so the first `up` writes 32 random bytes, base64, to `<run dir>/secrets/kek` (directory 0700,
file 0600) and every later `up` reads the same file. Only the secrets process gets it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path

from noetl_mesh.errors import StartError

KEY_BYTES = 32
KEK_FILE = Path("secrets") / "kek"
# Variables that mean the caller configured the wallet's keys; the stack then adds none.
_CALLER_KEYS = ("NOETL_ENCRYPTION_KEY", "NOETL_KMS_PROVIDER")


def kek_environment(run_dir: Path, base_env: Mapping[str, str]) -> dict[str, str]:
    """`NOETL_ENCRYPTION_KEY` for the secrets process, unless the caller set up keys itself.

    Raises:
        StartError: the key file exists but does not hold a 32-byte base64 key.
    """
    if any(base_env.get(name, "").strip() for name in _CALLER_KEYS):
        return {}
    return {"NOETL_ENCRYPTION_KEY": ensure_key(run_dir / KEK_FILE)}


def ensure_key(path: Path) -> str:
    """The key in `path`, created first if missing (exclusively, so two `up`s agree on one).

    Raises:
        StartError: the file holds something other than base64 of 32 bytes.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as file:
        file.write(base64.b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
    return _read(path)


def _read(path: Path) -> str:
    text = path.read_text().strip()
    try:
        valid = len(base64.b64decode(text, validate=True)) == KEY_BYTES
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise StartError(
            f"{path} must hold base64 of {KEY_BYTES} bytes; remove it to make a new key (stored secrets are then lost)",
            name="secrets",
            log_tail="",
        )
    return text
