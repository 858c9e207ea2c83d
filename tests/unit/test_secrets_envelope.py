"""Envelope format v1 and local KEKs (data-model.md §9.2, §9.4): round trip, strict parsing, failures."""

from __future__ import annotations

import base64
import json
import os

import pytest

from services.secrets import envelope
from services.secrets.cipher import Cipher, SealError
from services.secrets.envelope import EnvelopeError
from services.secrets.kek import LOCAL_KID, Keyring, LocalKek

SECRET = {"user": "svc", "password": "hunter2-very-secret", "port": 5432}


def keyring(version: str = "v1", key: bytes | None = None, **previous: bytes) -> Keyring:
    return Keyring(LocalKek({version: key or os.urandom(32), **previous}, version))


async def test_round_trip_in_the_v1_format() -> None:
    cipher = Cipher(keyring())
    stored = await cipher.seal(SECRET)

    doc = json.loads(stored)
    assert list(doc) == ["v", "alg", "ct", "dek"]
    assert doc["v"] == 1 and doc["alg"] == "AES-256-GCM"
    assert list(doc["dek"]) == ["p", "kid", "kv", "ct"]
    assert doc["dek"]["p"] == "local" and doc["dek"]["kid"] == LOCAL_KID and doc["dek"]["kv"] == "v1"
    assert stored == json.dumps(doc, separators=(",", ":"))  # compact
    # nonce(12) || ciphertext || tag(16), for the data and for the wrapped 32-byte DEK
    assert len(base64.b64decode(doc["ct"])) == 12 + len(json.dumps(SECRET, separators=(",", ":"))) + 16
    assert len(base64.b64decode(doc["dek"]["ct"])) == 12 + 32 + 16
    assert "hunter2" not in stored and "svc" not in stored

    opened = await cipher.open(stored)
    assert opened.data == SECRET
    assert opened.kek_version == "v1"


async def test_every_record_gets_a_fresh_data_key_and_nonce() -> None:
    cipher = Cipher(keyring())
    first, second = json.loads(await cipher.seal(SECRET)), json.loads(await cipher.seal(SECRET))
    assert first["ct"] != second["ct"]
    assert first["dek"]["ct"] != second["dek"]["ct"]


async def test_a_wrong_key_is_a_clear_error() -> None:
    stored = await Cipher(keyring()).seal(SECRET)
    with pytest.raises(SealError, match="cannot unwrap its data key") as caught:
        await Cipher(keyring()).open(stored)
    assert caught.value.kek_version == "v1"
    assert "hunter2" not in str(caught.value)


async def test_an_unknown_key_version_says_what_to_configure() -> None:
    stored = await Cipher(keyring("v1")).seal(SECRET)
    with pytest.raises(SealError, match="NOETL_ENCRYPTION_PREVIOUS_KEYS"):
        await Cipher(keyring("v2")).open(stored)


def _tamper(stored: str, field: str, flip_at: int) -> str:
    doc = json.loads(stored)
    holder = doc["dek"] if field == "dek" else doc
    raw = bytearray(base64.b64decode(holder["ct"]))
    raw[flip_at] ^= 0x01
    holder["ct"] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(doc, separators=(",", ":"))


@pytest.mark.parametrize(("field", "flip_at"), [("ct", 0), ("ct", 20), ("ct", -1), ("dek", 5), ("dek", -1)])
async def test_tampered_values_fail_authentication(field: str, flip_at: int) -> None:
    cipher = Cipher(keyring())
    stored = await cipher.seal(SECRET)
    with pytest.raises(SealError):
        await cipher.open(_tamper(stored, field, flip_at))


async def test_a_truncated_ciphertext_fails_cleanly() -> None:
    cipher = Cipher(keyring())
    doc = json.loads(await cipher.seal(SECRET))
    raw = base64.b64decode(doc["ct"])
    for cut in (len(raw) - 1, 28, 27, 5):
        doc["ct"] = base64.b64encode(raw[:cut]).decode()
        with pytest.raises(SealError):
            await cipher.open(json.dumps(doc))


async def test_a_truncated_stored_value_is_not_an_envelope() -> None:
    cipher = Cipher(keyring())
    stored = await cipher.seal(SECRET)
    with pytest.raises(SealError, match="not a v1 envelope"):
        await cipher.open(stored[: len(stored) // 2])


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain text",
        "[]",
        '{"v":2,"alg":"AES-256-GCM","ct":"AAAA","dek":{"p":"local","kid":"k","kv":"v1","ct":"AAAA"}}',
        '{"v":true,"alg":"AES-256-GCM","ct":"AAAA","dek":{"p":"local","kid":"k","kv":"v1","ct":"AAAA"}}',
        '{"v":1,"alg":"AES-128-CBC","ct":"AAAA","dek":{"p":"local","kid":"k","kv":"v1","ct":"AAAA"}}',
        '{"v":1,"alg":"AES-256-GCM","ct":"not base64!","dek":{"p":"local","kid":"k","kv":"v1","ct":"AAAA"}}',
        '{"v":1,"alg":"AES-256-GCM","ct":"AAAA","dek":{"p":"local","kid":"k","kv":"v1","ct":"AAAA"}}',
        '{"v":1,"alg":"AES-256-GCM","ct":"' + "A" * 40 + '","dek":{"p":"local","kid":"k","kv":"","ct":"AA"}}',
        '{"v":1,"alg":"AES-256-GCM","ct":"' + "A" * 40 + '"}',
    ],
)
def test_parsing_is_strict(stored: str) -> None:
    with pytest.raises(EnvelopeError):
        envelope.parse(stored)


async def test_previous_keys_still_decrypt() -> None:
    old = os.urandom(32)
    stored = await Cipher(keyring("v1", old)).seal(SECRET)
    opened = await Cipher(keyring("v2", None, v1=old)).open(stored)
    assert opened.data == SECRET and opened.kek_version == "v1"


async def test_rewrap_keeps_the_ciphertext_byte_identical() -> None:
    old = os.urandom(32)
    ring = keyring("v2", None, v1=old)
    stored = await Cipher(keyring("v1", old)).seal(SECRET)
    parsed = envelope.parse(stored)

    assert not ring.is_current(parsed.dek, "v2")
    rewrapped = parsed.with_dek(await ring.rewrap_to_current(parsed.dek)).dumps()

    assert json.loads(rewrapped)["ct"] == json.loads(stored)["ct"]
    assert json.loads(rewrapped)["dek"]["kv"] == "v2"
    assert (await Cipher(keyring("v2", _key_of(ring))).open(rewrapped)).data == SECRET


def _key_of(ring: Keyring) -> bytes:
    primary = ring.primary
    assert isinstance(primary, LocalKek)
    return primary._keys["v2"]


async def test_a_provider_refuses_keys_that_are_not_its_own() -> None:
    stored = await Cipher(keyring()).seal(SECRET)
    doc = json.loads(stored)
    doc["dek"]["p"] = "vault-transit"
    with pytest.raises(SealError, match="not configured"):
        await Cipher(keyring()).open(json.dumps(doc))
