"""The stored form of secret data: envelope format `v = 1` (data-model.md §9.2).

```
{"v":1,"alg":"AES-256-GCM","ct":"<b64(nonce||ciphertext||tag)>","dek":{"p":..,"kid":..,"kv":..,"ct":..}}
```

Pure: no I/O, no key providers. `seal_data`/`open_data` do the AES-256-GCM of the data under a
data key (DEK); wrapping the DEK is the KEK provider's job (`services.secrets.kek`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
ALGORITHM = "AES-256-GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class EnvelopeError(Exception):
    """A stored value that is not a well-formed v1 envelope (rotation's `parse_error`)."""


class DecryptError(Exception):
    """The envelope parsed but its ciphertext failed authentication or is not JSON."""


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """`dek` of the envelope: which KEK wrapped the data key, and the wrapped bytes as text."""

    provider: str
    kid: str
    kv: str
    ct: str


@dataclass(frozen=True, slots=True)
class Envelope:
    ct: str
    dek: WrappedKey

    def dumps(self) -> str:
        """Compact JSON, keys in the order of §9.2."""
        return json.dumps(
            {
                "v": VERSION,
                "alg": ALGORITHM,
                "ct": self.ct,
                "dek": {"p": self.dek.provider, "kid": self.dek.kid, "kv": self.dek.kv, "ct": self.dek.ct},
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def with_dek(self, dek: WrappedKey) -> Envelope:
        """The same ciphertext under another wrapped key (rotation never touches `ct`)."""
        return Envelope(ct=self.ct, dek=dek)


def parse(stored: str) -> Envelope:
    """Strict decoding of a stored value.

    Raises:
        EnvelopeError: not JSON, not an object, a wrong version or algorithm, a missing field,
            or a `ct` that is not base64 of at least a nonce and a tag.
    """
    try:
        doc = json.loads(stored)
    except (ValueError, TypeError) as exc:
        raise EnvelopeError("not JSON") from exc
    if not isinstance(doc, dict):
        raise EnvelopeError("not a JSON object")
    version = doc.get("v")
    if isinstance(version, bool) or version != VERSION:
        raise EnvelopeError(f"unsupported envelope version {version!r}")
    if doc.get("alg") != ALGORITHM:
        raise EnvelopeError(f"unsupported algorithm {doc.get('alg')!r}")
    ct = doc.get("ct")
    if not isinstance(ct, str):
        raise EnvelopeError("missing ct")
    if len(b64decode(ct, "ct")) < NONCE_BYTES + TAG_BYTES:
        raise EnvelopeError("ct is truncated")
    dek = doc.get("dek")
    if not isinstance(dek, dict):
        raise EnvelopeError("missing dek")
    fields = [dek.get(name) for name in ("p", "kid", "kv", "ct")]
    if not all(isinstance(value, str) and value for value in fields):
        raise EnvelopeError("dek needs non-empty p, kid, kv and ct")
    provider, kid, kv, wrapped = (str(value) for value in fields)
    return Envelope(ct=ct, dek=WrappedKey(provider=provider, kid=kid, kv=kv, ct=wrapped))


def b64decode(text: str, what: str) -> bytes:
    """Standard padded base64, strictly.

    Raises:
        EnvelopeError: `text` is not valid base64.
    """
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"{what} is not base64") from exc


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def new_data_key() -> bytearray:
    """A fresh random 32-byte DEK, mutable so the caller can wipe it (`wipe`)."""
    return bytearray(os.urandom(KEY_BYTES))


def wipe(buffer: bytearray) -> None:
    """Overwrites key material in place (as far as Python allows: copies made by libraries remain)."""
    for index in range(len(buffer)):
        buffer[index] = 0


def aead_encrypt(key: bytes | bytearray, plaintext: bytes) -> bytes:
    """`nonce(12) || ciphertext || tag(16)` under AES-256-GCM, no AAD."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(bytes(key)).encrypt(nonce, plaintext, None)


def aead_decrypt(key: bytes | bytearray, framed: bytes) -> bytes:
    """Raises DecryptError when the frame is truncated or fails authentication."""
    if len(framed) < NONCE_BYTES + TAG_BYTES:
        raise DecryptError("ciphertext is truncated")
    try:
        return AESGCM(bytes(key)).decrypt(framed[:NONCE_BYTES], framed[NONCE_BYTES:], None)
    except InvalidTag as exc:
        raise DecryptError("authentication failed (wrong key, or tampered or truncated data)") from exc


def seal_data(dek: bytes | bytearray, data: Any) -> str:
    """The envelope's `ct` for `data`: its compact JSON encrypted under `dek`.

    Raises:
        TypeError: `data` cannot be serialised as JSON.
    """
    return b64encode(aead_encrypt(dek, orjson.dumps(data)))


def open_data(dek: bytes | bytearray, envelope: Envelope) -> Any:
    """Raises DecryptError when the ciphertext fails authentication or is not JSON."""
    plaintext = aead_decrypt(dek, b64decode(envelope.ct, "ct"))
    try:
        return orjson.loads(plaintext)
    except orjson.JSONDecodeError as exc:
        raise DecryptError("decrypted data is not JSON") from exc
