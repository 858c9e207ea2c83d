"""Secrets wallet configuration, fail closed (data-model.md §9.3, §9.4; docs/decisions.md).

Local key-encryption keys form a keyring:

- `NOETL_ENCRYPTION_KEY` — base64 of 32 bytes, the key new data keys are wrapped with;
- `NOETL_ENCRYPTION_KEY_VERSION` — its version label, `v<N>` (default `v1`);
- `NOETL_ENCRYPTION_PREVIOUS_KEYS` — `v<N>:<base64>` pairs, comma-separated: older keys that
  only unwrap, until `rotate-kek` has re-wrapped every row under the current one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kernel import addresses
from kernel.config import EnvReader, ServiceBasics
from services.secrets.envelope import KEY_BYTES
from services.secrets.kek import LOCAL, VAULT_TRANSIT
from services.secrets.vault import VaultSettings

_VERSION = re.compile(r"^v[1-9][0-9]*$")
_MAKE_KEY = "python -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())'"
MISSING_KEY = (
    "NOETL_ENCRYPTION_KEY is required: set it to base64 of 32 random bytes "
    f"(e.g. `{_MAKE_KEY}`), or set NOETL_ALLOW_INSECURE_DEFAULT_KEY=true for a throwaway "
    "per-process key (secrets then do not survive a restart)"
)


@dataclass(frozen=True, slots=True)
class KekSettings:
    provider: str
    # Version → key; empty with `insecure_random_key` (the assembler makes one up).
    local_keys: Mapping[str, bytes] = field(default_factory=dict)
    local_version: str = "v1"
    insecure_random_key: bool = False
    vault: VaultSettings | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    basics: ServiceBasics
    kek: KekSettings
    audit_required: bool
    catalog_addr: str
    events_addrs: tuple[str, ...]
    # The execution shards: asked whether a worker's claim binds it to what it resolves.
    execution_addrs: tuple[str, ...]
    # Expired keychain rows (but auto_renew ones) are deleted this often; 0 disables it.
    keychain_cleanup_seconds: float = 300.0

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Raises ConfigError listing every invalid or missing variable."""
        env = EnvReader(environ)
        settings = cls(
            basics=ServiceBasics.read(env, addresses.SECRETS, "secrets"),
            kek=read_kek(env),
            audit_required=env.flag("NOETL_SECRET_AUDIT_REQUIRED", False),
            catalog_addr=env.text("NOETL_CATALOG_ADDR", addresses.CATALOG),
            events_addrs=env.addresses("NOETL_EVENTS_ADDRS", addresses.EVENTS),
            execution_addrs=env.addresses("NOETL_EXECUTION_ADDRS", addresses.EXECUTION),
            keychain_cleanup_seconds=env.number("NOETL_KEYCHAIN_CLEANUP_SECONDS", 300.0, minimum=0.0),
        )
        env.finish()
        return settings


def read_kek(env: EnvReader) -> KekSettings:
    provider = env.text("NOETL_KMS_PROVIDER", LOCAL).lower()
    insecure = env.flag("NOETL_ALLOW_INSECURE_DEFAULT_KEY", False)
    if provider not in (LOCAL, VAULT_TRANSIT):
        env.problem(f"NOETL_KMS_PROVIDER must be {LOCAL} or {VAULT_TRANSIT}, got {provider!r}")
        return KekSettings(provider=provider)
    version = env.text("NOETL_ENCRYPTION_KEY_VERSION", "v1")
    if not _VERSION.match(version):
        env.problem(f"NOETL_ENCRYPTION_KEY_VERSION must look like v1, v2, ..., got {version!r}")
    keys = _previous_keys(env, version)
    raw_key = env.text("NOETL_ENCRYPTION_KEY")
    if raw_key:
        current = _key(env, "NOETL_ENCRYPTION_KEY", raw_key)
        if current is not None:
            keys[version] = current
    elif provider == LOCAL and not insecure:
        env.problem(MISSING_KEY)
    if provider == LOCAL:
        return KekSettings(
            provider=LOCAL,
            local_keys=keys,
            local_version=version,
            insecure_random_key=insecure and not raw_key,
        )
    # vault-transit: a local key is optional and only unwraps rows not yet rotated into Vault.
    return KekSettings(provider=VAULT_TRANSIT, local_keys=keys, local_version=version, vault=_vault(env))


def _previous_keys(env: EnvReader, current_version: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    raw = env.text("NOETL_ENCRYPTION_PREVIOUS_KEYS")
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        version, sep, encoded = item.partition(":")
        if not sep or not _VERSION.match(version):
            env.problem("NOETL_ENCRYPTION_PREVIOUS_KEYS items must be v<N>:<base64 key>")
            continue
        if version in keys or version == current_version:
            env.problem(f"NOETL_ENCRYPTION_PREVIOUS_KEYS: version {version} is given twice")
            continue
        key = _key(env, f"NOETL_ENCRYPTION_PREVIOUS_KEYS ({version})", encoded)
        if key is not None:
            keys[version] = key
    return keys


def _key(env: EnvReader, name: str, encoded: str) -> bytes | None:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        env.problem(f"{name} must be base64 of exactly {KEY_BYTES} bytes (it is not base64)")
        return None
    if len(key) != KEY_BYTES:
        env.problem(f"{name} must be base64 of exactly {KEY_BYTES} bytes, got {len(key)} bytes")
        return None
    return key


def _vault(env: EnvReader) -> VaultSettings:
    settings = VaultSettings(
        addr=env.text("VAULT_ADDR", "http://127.0.0.1:8200"),
        token=env.text("VAULT_TOKEN"),
        token_file=env.text("NOETL_VAULT_TOKEN_FILE"),
        namespace=env.text("VAULT_NAMESPACE"),
        ca_file=env.text("NOETL_VAULT_CA_FILE"),
        mount=env.text("NOETL_VAULT_TRANSIT_MOUNT", "transit").strip("/"),
        key=env.text("NOETL_VAULT_TRANSIT_KEY", required=True),
    )
    if not settings.token and not settings.token_file:
        env.problem("vault-transit needs VAULT_TOKEN or NOETL_VAULT_TOKEN_FILE")
    return settings
