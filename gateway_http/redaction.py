"""The display filter: the reference's pattern and key-name redaction rules (data-model.md §9.10).

Applied only to what a person is shown (`GET /api/events/{id}/result`, `NOETL_DISPLAY_REDACTION`),
never to what is stored or what a step reads: these rules also match ordinary data (a base64 blob,
a sha256 digest, a `token_count` key). Secrets themselves are replaced by value before they are
stored, by the worker that resolved them.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"
MAX_DEPTH = 20

_SENSITIVE = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "bearer",
    "api_key",
    "apikey",
    "access_token",
    "refresh_token",
    "auth_token",
    "authorization",
    "credential",
    "credentials",
    "private_key",
    "secret_key",
    "client_secret",
    "connection_string",
    "db_password",
    "aws_secret",
    "gcp_key",
    "azure_key",
    "ssh_key",
    "passphrase",
    "pem",
    "cert",
    "certificate",
    "oauth_token",
    "id_token",
    "encryption_key",
    "decrypt_key",
    "master_key",
    "snowflake_password",
    "snowflake_token",
    "private_key_passphrase",
)
_FRAGMENTS = tuple(sorted({*_SENSITIVE, *(name.replace("_", "") for name in _SENSITIVE)}))
_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$")
_BASE64ISH = re.compile(r"^[A-Za-z0-9+/=]{40,}$")


def sensitive_key(key: str) -> bool:
    name = key.lower().replace("-", "_")
    return any(fragment in name for fragment in _FRAGMENTS)


def sensitive_value(value: str) -> bool:
    if value.startswith(("Bearer ", "Basic ")):
        return True
    if len(value) > 50 and value.count(".") == 2 and _JWT.match(value):
        return True
    if "PRIVATE KEY-----" in value:
        return True
    return bool(_BASE64ISH.match(value))


def redact(value: Any, depth: int = 0) -> Any:
    """A copy of `value` with sensitive keys and values replaced; deeper than 20 levels is cut."""
    if depth > MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {
            key: REDACTED if isinstance(key, str) and sensitive_key(key) else redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, depth + 1) for item in value]
    if isinstance(value, str) and sensitive_value(value):
        return REDACTED
    return value
