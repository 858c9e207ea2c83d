"""Key-encryption keys (data-model.md §9.3, §9.4): the `local` provider and the keyring.

A `KekProvider` wraps and unwraps 32-byte data keys. The `Keyring` wraps new keys with the
configured provider and unwraps each stored key with the provider recorded in its envelope,
so rows written under an older provider or key version stay readable until rotation has
re-wrapped them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from services.secrets.envelope import (
    DecryptError,
    EnvelopeError,
    WrappedKey,
    aead_decrypt,
    aead_encrypt,
    b64decode,
    b64encode,
)

LOCAL = "local"
VAULT_TRANSIT = "vault-transit"
LOCAL_KID = "env:NOETL_ENCRYPTION_KEY"
PROVIDER_ERROR_CHARS = 200


class KekError(Exception):
    """A data key could not be wrapped or unwrapped; the message never holds key material."""


def provider_error(exc: BaseException) -> str:
    """A provider's error text, cut to 200 characters for errors and logs (§9.4)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:PROVIDER_ERROR_CHARS]


class KekProvider(Protocol):
    @property
    def provider_id(self) -> str: ...

    @property
    def kid(self) -> str: ...

    async def current_version(self, *, refresh: bool = False) -> str:
        """The version new keys are wrapped under; `refresh` bypasses any cache.

        Raises:
            KekError: the provider cannot be asked.
        """
        ...

    async def wrap(self, dek: bytes) -> WrappedKey:
        """Raises KekError."""
        ...

    async def unwrap(self, wrapped: WrappedKey) -> bytes:
        """Raises KekError: not this provider's key, an unknown version, or authentication failed."""
        ...

    async def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        """The same data key under the current version. Raises KekError."""
        ...


class LocalKek:
    """AES-256-GCM with a versioned set of local keys; new keys go under `current`."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the current local key version {current!r} has no key")
        self._keys = dict(keys)
        self._current = current

    @property
    def provider_id(self) -> str:
        return LOCAL

    @property
    def kid(self) -> str:
        return LOCAL_KID

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    async def current_version(self, *, refresh: bool = False) -> str:
        return self._current

    async def wrap(self, dek: bytes) -> WrappedKey:
        wrapped = aead_encrypt(self._keys[self._current], dek)
        return WrappedKey(provider=LOCAL, kid=LOCAL_KID, kv=self._current, ct=b64encode(wrapped))

    async def unwrap(self, wrapped: WrappedKey) -> bytes:
        if wrapped.provider != LOCAL:
            raise KekError(f"the local provider does not unwrap keys of provider {wrapped.provider!r}")
        key = self._keys.get(wrapped.kv)
        if key is None:
            raise KekError(
                f"no local key of version {wrapped.kv!r} is configured "
                f"(known: {', '.join(self.versions)}); add it to NOETL_ENCRYPTION_PREVIOUS_KEYS"
            )
        try:
            return aead_decrypt(key, b64decode(wrapped.ct, "dek.ct"))
        except (DecryptError, EnvelopeError) as exc:
            raise KekError(f"local key {wrapped.kv} cannot unwrap the data key: {exc}") from exc

    async def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        dek = bytearray(await self.unwrap(wrapped))
        try:
            return await self.wrap(bytes(dek))
        finally:
            dek[:] = bytes(len(dek))


class Keyring:
    """The primary provider wraps; every configured provider unwraps its own keys."""

    def __init__(self, primary: KekProvider, others: Mapping[str, KekProvider] | None = None) -> None:
        self.primary = primary
        self._providers: dict[str, KekProvider] = {**(others or {}), primary.provider_id: primary}

    async def current_version(self, *, refresh: bool = False) -> str:
        """Raises KekError."""
        return await self.primary.current_version(refresh=refresh)

    def is_current(self, wrapped: WrappedKey, current_version: str) -> bool:
        return (
            wrapped.provider == self.primary.provider_id
            and wrapped.kid == self.primary.kid
            and wrapped.kv == current_version
        )

    async def wrap(self, dek: bytes) -> WrappedKey:
        return await self.primary.wrap(dek)

    async def unwrap(self, wrapped: WrappedKey) -> bytes:
        """Raises KekError when no configured provider owns the key, or unwrapping fails."""
        provider = self._providers.get(wrapped.provider)
        if provider is None:
            raise KekError(
                f"the data key is wrapped by provider {wrapped.provider!r}, which is not configured"
            )
        return await provider.unwrap(wrapped)

    async def rewrap_to_current(self, wrapped: WrappedKey) -> WrappedKey:
        """Within one provider its own rewrap (Vault never exposes the key); across providers
        unwrap with the old one and wrap with the primary.

        Raises:
            RewrapError: its `phase` ("unwrap" or "wrap") says which step failed.
        """
        if wrapped.provider == self.primary.provider_id and wrapped.kid == self.primary.kid:
            try:
                return await self.primary.rewrap(wrapped)
            except KekError as exc:
                raise RewrapError("unwrap", str(exc)) from exc
        try:
            dek = bytearray(await self.unwrap(wrapped))
        except KekError as exc:
            raise RewrapError("unwrap", str(exc)) from exc
        try:
            return await self.primary.wrap(bytes(dek))
        except KekError as exc:
            raise RewrapError("wrap", str(exc)) from exc
        finally:
            dek[:] = bytes(len(dek))


class RewrapError(KekError):
    """A re-wrap failed while unwrapping the old key or wrapping under the new one."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase
