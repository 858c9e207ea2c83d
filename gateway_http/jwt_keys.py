"""Bearer JWT validation for the gateway's optional HTTP auth (docs/security.md).

A token must be signed by a key of the configured JWKS (a file, re-read when it changes, or an
OIDC provider's URL, cached and re-fetched when a token names a key id it has not seen, at most
every `refetch_seconds`), with the configured issuer and audience, unexpired. Its scopes come
from `scope`/`scp` (space-separated or a list) and Auth0's `permissions`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from kernel.mesh_auth import WatchedFile

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
_SCOPE_CLAIMS = ("scope", "scp", "permissions")


class InvalidToken(Exception):
    """The token is not acceptable; the message says why (never the token)."""


@dataclass(frozen=True, slots=True)
class JwtSettings:
    issuer: str
    audience: str
    jwks_file: str = ""
    jwks_url: str = ""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    cache_seconds: float = 300.0
    # An unknown key id triggers a fetch at most this often (random key ids cannot hammer the provider).
    refetch_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    scopes: frozenset[str]


def scopes_of(payload: dict[str, Any]) -> frozenset[str]:
    found: set[str] = set()
    for claim in _SCOPE_CLAIMS:
        value = payload.get(claim)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return frozenset(found)


class _Jwks:
    """The signing keys, from a file or a URL."""

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._file = WatchedFile(settings.jwks_file) if settings.jwks_file else None
        self._file_text = ""
        self._keys: jwt.PyJWKSet | None = None
        self._fetched = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """Raises InvalidToken: no key matches."""
        keys = await self._current(refresh=False)
        found = _match(keys, kid)
        if found is None and self._file is None:
            found = _match(await self._current(refresh=True), kid)
        if found is None:
            raise InvalidToken(f"no signing key {kid!r} in the JWKS")
        return found

    async def _current(self, *, refresh: bool) -> jwt.PyJWKSet:
        if self._file is not None:
            text = self._file.text()
            if self._keys is None or text != self._file_text:
                self._keys = _parse(text)
                self._file_text = text
            return self._keys
        async with self._lock:
            age = time.monotonic() - self._fetched
            stale = age > self._settings.cache_seconds or (refresh and age > self._settings.refetch_seconds)
            if self._keys is None or stale:
                self._keys = await self._fetch()
                self._fetched = time.monotonic()
            return self._keys

    async def _fetch(self) -> jwt.PyJWKSet:
        try:
            # A client per fetch: fetches are minutes apart, and nothing is left open between them.
            async with httpx.AsyncClient(timeout=10.0) as http:
                response = await http.get(self._settings.jwks_url)
            response.raise_for_status()
            return _parse(response.text)
        except (httpx.HTTPError, InvalidToken) as exc:
            if self._keys is not None:
                log.warning(
                    "JWKS refresh from %s failed (%s); keeping the keys held", self._settings.jwks_url, exc
                )
                return self._keys
            raise InvalidToken(f"signing keys unavailable: {type(exc).__name__}") from None


def _parse(text: str) -> jwt.PyJWKSet:
    try:
        return jwt.PyJWKSet.from_dict(json.loads(text))
    except (ValueError, jwt.PyJWTError) as exc:
        raise InvalidToken(f"the JWKS is not usable: {exc}") from None


def _match(keys: jwt.PyJWKSet, kid: str | None) -> jwt.PyJWK | None:
    candidates: Iterable[jwt.PyJWK] = keys.keys
    if kid is None:
        listed = list(candidates)
        return listed[0] if len(listed) == 1 else None
    return next((key for key in candidates if key.key_id == kid), None)


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._keys = _Jwks(settings)

    async def verify(self, token: str) -> Claims:
        """Raises InvalidToken: bad signature, wrong issuer or audience, expired, malformed."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JWT") from None
        if header.get("alg") not in self._settings.algorithms:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        key = await self._keys.key(header.get("kid"))
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self._settings.algorithms),
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
        return Claims(subject=str(payload.get("sub", "")), scopes=scopes_of(payload))
