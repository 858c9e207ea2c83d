"""Secrets at run time (dsl.md §8.5 D, §16 step 6; data-model.md §9.9-§9.10).

A worker reads secrets only through the secrets service's `Resolve` RPC, right before the tool
that needs them runs: a `{{ keychain.<alias>.<field> }}` template, a tool's `auth: <alias>` (or
`credential: <alias>`), a `secrets` tool. Resolved values live in memory for one command
(`CommandSecrets`), and every one of them is replaced by `[REDACTED]` in that command's events,
also where a tool echoed it into its stdout, its result data or its error message.

What is redacted by value: every string (and number) in the resolved data, except the values of
connection fields that are not secret (`host`, `port`, `user`, `database`, ... see
`_NOT_SECRET`), which would otherwise blank out ordinary words of the output. A value under four
characters is redacted only where it is a whole string, never inside a longer text.

A tool may hand a secret on encoded, so each one is also redacted in its common encodings (as a
whole value: base64 and base64url with and without padding, URL-encoded, JSON-escaped, hex in
either case). Nothing else is redacted here: data that merely looks secret (a base64 blob, a
`token_count` key) is user data and reaches later steps unchanged (data-model.md §9.10).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import traceback
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from noetl.v1 import secrets_pb2, secrets_pb2_grpc

from kernel import jsonutil
from kernel.errors import MeshError, NotFound

log = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
RESOLVE_TIMEOUT_SECONDS = 30.0
_MIN_SUBSTRING = 4
_NOT_SECRET = frozenset(
    {
        "host",
        "db_host",
        "hostname",
        "port",
        "db_port",
        "user",
        "db_user",
        "username",
        "database",
        "db_name",
        "dbname",
        "schema",
        "sslmode",
        "type",
        "kind",
        "provider",
        "region",
    }
)


class SecretError(Exception):
    """A secret could not be resolved; the message is the tool error."""


class SecretsClient:
    """The worker's handle on `SecretsService.Resolve`; None stub = no secrets service configured."""

    def __init__(self, stub: secrets_pb2_grpc.SecretsServiceStub | None, worker_id: str) -> None:
        self._stub = stub
        self._worker_id = worker_id

    async def resolve(self, alias: str, execution_id: int) -> Any:
        """The decrypted data of a stored credential, or of a keychain alias of the execution.

        Raises:
            SecretError: no secrets service, no such credential or alias, or the service failed.
        """
        if self._stub is None:
            raise SecretError(f"credential '{alias}': no secrets service configured (NOETL_SECRETS_ADDR)")
        request = secrets_pb2.ResolveRequest(
            alias=alias, execution_id=execution_id, worker_id=self._worker_id
        )
        try:
            answer = await self._stub.Resolve(request, timeout=RESOLVE_TIMEOUT_SECONDS)
        except NotFound:
            raise SecretError(f"credential '{alias}' not found in the secrets wallet") from None
        except MeshError as exc:
            raise SecretError(f"credential '{alias}' could not be resolved: {exc.detail}") from None
        return jsonutil.loads(answer.data_json)


class CommandSecrets:
    """The secrets of one command: resolved once per alias, and redacted from its events."""

    def __init__(self, client: SecretsClient | None = None, execution_id: int = 0) -> None:
        self._client = client
        self._execution_id = execution_id
        self._resolved: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._values: set[str] = set()

    async def credential(self, alias: str) -> Any:
        """The alias's data (cached for the command); its values are redacted from then on.

        Raises:
            SecretError: the alias cannot be resolved.
        """
        if alias in self._resolved:
            return self._resolved[alias]
        lock = self._locks.setdefault(alias, asyncio.Lock())
        async with lock:
            if alias not in self._resolved:
                if self._client is None:
                    raise SecretError(f"credential '{alias}': this worker has no secrets service")
                data = await self._client.resolve(alias, self._execution_id)
                self.remember(data)
                self._resolved[alias] = data
        return self._resolved[alias]

    def remember(self, value: Any) -> None:
        """Redact `value` (a string, or the secret leaves of a map or list) from this command's events."""
        for leaf in _secret_leaves(value, None):
            if leaf:
                self._values.update(encodings(leaf))

    @property
    def active(self) -> bool:
        return bool(self._values)

    def crash_text(self, exc: BaseException) -> str:
        """The traceback of `exc` for the log, redacted: an exception's message may quote a secret."""
        text: str = self.redact("".join(traceback.format_exception(exc)))
        return text

    def redact(self, value: Any) -> Any:
        """A copy of `value` with every remembered secret replaced by `[REDACTED]`."""
        if not self._values:
            return value
        # Longest first, so that a secret containing another is replaced whole.
        ordered = sorted(self._values, key=len, reverse=True)
        return _redact(value, ordered, frozenset(self._values))


def encodings(secret: str) -> set[str]:
    """`secret` and the forms a tool is likely to pass it on in; tiny values only as themselves,
    since the encoding of two characters would blank out ordinary text."""
    forms = {secret}
    if len(secret) < _MIN_SUBSTRING:
        return forms
    raw = secret.encode()
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms.update((encoded, encoded.rstrip("=")))
    forms.update(
        (
            urllib.parse.quote(secret, safe=""),
            urllib.parse.quote_plus(secret),
            json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1],
            raw.hex(),
            raw.hex().upper(),
        )
    )
    return forms


def _secret_leaves(value: Any, key: str | None) -> Iterable[str]:
    if key is not None and key.lower().replace("-", "_") in _NOT_SECRET:
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            yield from _secret_leaves(item, str(k))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_leaves(item, None)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield str(value)


def _redact(value: Any, ordered: list[str], whole: frozenset[str]) -> Any:
    if isinstance(value, str):
        if value in whole:
            return REDACTED
        for secret in ordered:
            if len(secret) >= _MIN_SUBSTRING and secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {k: _redact(item, ordered, whole) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item, ordered, whole) for item in value]
    return value


def credential_alias(config: Mapping[str, Any]) -> str | None:
    """The credential a tool names: `auth`, else its alias `credential` (real playbooks write
    either on http and database tools), as a name or `{credential|key|name: <name>}`."""
    raw = config.get("auth")
    if raw is None:
        raw = config.get("credential")
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    if isinstance(raw, Mapping):
        for key in ("credential", "key", "name"):
            value = raw.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None
