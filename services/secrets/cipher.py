"""Envelope encryption of secret data: a fresh data key per record, wrapped by the keyring."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kernel.errors import Unavailable
from services.secrets import envelope
from services.secrets.envelope import DecryptError, Envelope, EnvelopeError
from services.secrets.kek import KekError, Keyring


class SealError(Exception):
    """A stored value could not be opened: `outcome`-ready reason, never secret material."""

    def __init__(self, message: str, *, kek_version: str | None = None) -> None:
        super().__init__(message)
        self.kek_version = kek_version


@dataclass(frozen=True, slots=True)
class Opened:
    data: Any
    kek_version: str


class Cipher:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def seal(self, data: Any) -> str:
        """The stored form of `data`.

        Raises:
            Unavailable: the KEK provider could not wrap the data key.
            TypeError: `data` is not JSON-serialisable.
        """
        dek = envelope.new_data_key()
        try:
            ct = envelope.seal_data(dek, data)
            wrapped = await self.keyring.wrap(bytes(dek))
        except KekError as exc:
            raise Unavailable(f"cannot seal secret data: {exc}", retry_after=5) from exc
        finally:
            envelope.wipe(dek)
        return Envelope(ct=ct, dek=wrapped).dumps()

    async def open(self, stored: str) -> Opened:
        """Raises SealError: not an envelope, the data key cannot be unwrapped, or the data
        fails authentication (a wrong key, a truncated or tampered value)."""
        try:
            parsed = envelope.parse(stored)
        except EnvelopeError as exc:
            raise SealError(f"stored value is not a v1 envelope ({exc})") from exc
        kv = parsed.dek.kv
        try:
            dek = bytearray(await self.keyring.unwrap(parsed.dek))
        except KekError as exc:
            raise SealError(f"cannot unwrap its data key: {exc}", kek_version=kv) from exc
        try:
            return Opened(envelope.open_data(dek, parsed), kv)
        except (DecryptError, EnvelopeError) as exc:
            raise SealError(f"its data cannot be decrypted: {exc}", kek_version=kv) from exc
        finally:
            envelope.wipe(dek)
