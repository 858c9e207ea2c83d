"""The `vault-transit` KEK provider (data-model.md §9.4): data keys wrapped by Vault Transit.

hvac is synchronous; each call runs in a worker thread. The DEK goes to Vault only to be
encrypted; `rewrap` moves a wrapped key to the latest Vault key version without exposing it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions

from services.secrets.envelope import WrappedKey
from services.secrets.kek import VAULT_TRANSIT, KekError, provider_error

_CIPHERTEXT = re.compile(r"^vault:v([0-9]+):")
HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class VaultSettings:
    addr: str
    token: str
    token_file: str
    namespace: str
    ca_file: str
    mount: str
    key: str
    # How long the latest key version is trusted before Vault is asked again (at most 60 s).
    version_cache_seconds: float = 60.0


def key_version(ciphertext: str) -> str:
    """`v<N>` from a Vault ciphertext prefix.

    Raises:
        KekError: the text is not a Vault ciphertext.
    """
    match = _CIPHERTEXT.match(ciphertext)
    if match is None:
        raise KekError("Vault returned a ciphertext without a vault:v<N>: prefix")
    return f"v{match.group(1)}"


class VaultTransitKek:
    def __init__(self, settings: VaultSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._latest: tuple[str, float] | None = None

    @property
    def provider_id(self) -> str:
        return VAULT_TRANSIT

    @property
    def kid(self) -> str:
        return f"{self._settings.mount}/{self._settings.key}"

    def _client(self) -> hvac.Client:
        """A client with the token as of now: a token file is re-read on every use (§9.4)."""
        settings = self._settings
        token = settings.token
        if settings.token_file:
            try:
                token = Path(settings.token_file).read_text().strip()
            except OSError as exc:
                raise KekError(f"cannot read NOETL_VAULT_TOKEN_FILE: {provider_error(exc)}") from exc
        return hvac.Client(
            url=settings.addr,
            token=token,
            namespace=settings.namespace or None,
            verify=settings.ca_file or True,
            timeout=HTTP_TIMEOUT_SECONDS,
        )

    async def _call(self, what: str, operation: Callable[[Any], Any]) -> Any:
        def run() -> Any:
            return operation(self._client().secrets.transit)

        try:
            return await asyncio.to_thread(run)
        except (hvac.exceptions.VaultError, OSError, ValueError, KeyError, TypeError) as exc:
            # requests' errors are OSErrors; a malformed answer surfaces as KeyError/TypeError.
            raise KekError(f"Vault transit {what} failed: {provider_error(exc)}") from exc

    async def current_version(self, *, refresh: bool = False) -> str:
        now = self._clock()
        cached = self._latest
        if not refresh and cached is not None and now - cached[1] < self._settings.version_cache_seconds:
            return cached[0]
        settings = self._settings
        answer = await self._call(
            "read_key", lambda transit: transit.read_key(name=settings.key, mount_point=settings.mount)
        )
        version = f"v{int(answer['data']['latest_version'])}"
        self._latest = (version, now)
        return version

    async def wrap(self, dek: bytes) -> WrappedKey:
        settings = self._settings
        plaintext = base64.b64encode(dek).decode("ascii")
        answer = await self._call(
            "encrypt",
            lambda transit: transit.encrypt_data(
                name=settings.key, plaintext=plaintext, mount_point=settings.mount
            ),
        )
        return self._wrapped(str(answer["data"]["ciphertext"]))

    async def unwrap(self, wrapped: WrappedKey) -> bytes:
        self._check_owner(wrapped)
        settings = self._settings
        answer = await self._call(
            "decrypt",
            lambda transit: transit.decrypt_data(
                name=settings.key, ciphertext=wrapped.ct, mount_point=settings.mount
            ),
        )
        try:
            return base64.b64decode(str(answer["data"]["plaintext"]), validate=True)
        except ValueError as exc:
            raise KekError("Vault transit decrypt returned a plaintext that is not base64") from exc

    async def rewrap(self, wrapped: WrappedKey) -> WrappedKey:
        self._check_owner(wrapped)
        settings = self._settings
        answer = await self._call(
            "rewrap",
            lambda transit: transit.rewrap_data(
                name=settings.key, ciphertext=wrapped.ct, mount_point=settings.mount
            ),
        )
        return self._wrapped(str(answer["data"]["ciphertext"]))

    def _wrapped(self, ciphertext: str) -> WrappedKey:
        return WrappedKey(provider=VAULT_TRANSIT, kid=self.kid, kv=key_version(ciphertext), ct=ciphertext)

    def _check_owner(self, wrapped: WrappedKey) -> None:
        if wrapped.provider != VAULT_TRANSIT or wrapped.kid != self.kid:
            raise KekError(
                f"the Vault transit key {self.kid} does not unwrap keys of "
                f"{wrapped.provider!r} ({wrapped.kid})"
            )
