"""The credential, keychain and internal wallet routes through the gateway app, byte for byte.

http-api.md §9, §12.6-§12.8, §13.5. The gateway app runs in this process (ASGI transport) in
front of an in-process wallet on a fresh database; run-specific values are masked as in the
golden files (`tests/contract/golden.py`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway_http.settings import GatewaySettings
from kernel.migrate import migrate
from tests.contract.golden import mask
from tests.helpers.gateway import in_process_gateway
from tests.helpers.nowhere import NOWHERE_ENV
from tests.helpers.secrets import Wallet, new_key, running_secrets, wallet_settings

TOKEN = "internal-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "gw-Secret-Value-1234"


@pytest.fixture(scope="module")
async def wallet(module_dsn: str) -> AsyncIterator[Wallet]:
    await migrate(module_dsn)
    async with running_secrets(wallet_settings(module_dsn, {"NOETL_ENCRYPTION_KEY": new_key()})) as running:
        yield running


@pytest.fixture
async def http(wallet: Wallet) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings.load(
        {
            **NOWHERE_ENV,
            "NOETL_SECRETS_ADDR": wallet.address,
            "NOETL_INTERNAL_API_TOKEN": TOKEN,
        }
    )
    async with in_process_gateway(settings) as client:
        yield client


def body(response: httpx.Response, status: int = 200) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return mask(response.text)


async def test_credential_create_answers_without_data(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/credentials",
        json={"name": " gw_pg ", "credential_type": "postgres", "type": "ignored", "data": {"password": SECRET},
              "meta": {"env": "dev"}, "tags": "a, b,", "description": "Main"},
    )  # fmt: skip
    assert body(response) == (
        '{"id":"<ID>","name":"gw_pg","meta":{"env":"dev"},"tags":["a","b"],"description":"Main",'
        '"created_at":"<TS>","updated_at":"<TS>","data":null,"type":"postgres"}'
    )
    assert SECRET not in response.text


async def test_credential_list_and_get(http: httpx.AsyncClient) -> None:
    await http.post(
        "/api/credentials", json={"name": "gw_list", "data": {"password": SECRET}, "tags": ["x", 1]}
    )
    listed = await http.get("/api/credentials", params={"q": "GW_LIST"})
    assert body(listed) == (
        '{"items":[{"id":"<ID>","name":"gw_list","meta":null,"tags":["x","1"],"description":null,'
        '"created_at":"<TS>","updated_at":"<TS>","data":null,"type":"generic"}],"filter":{"type":null,"q":"GW_LIST"}}'
    )
    assert body(await http.get("/api/credentials", params={"type": "nope"})) == (
        '{"items":[],"filter":{"type":"nope","q":null}}'
    )
    plain = await http.get("/noetl/credentials/gw_list")
    assert '"data":null' in body(plain) and SECRET not in plain.text
    full = await http.get("/api/credentials/gw_list", params={"include_data": "true", "execution_id": "55"})
    assert json.loads(full.text)["data"] == {"password": SECRET}
    by_id = await http.get(f"/api/credentials/{json.loads(full.text)['id']}", params={"include_data": "1"})
    assert json.loads(by_id.text)["name"] == "gw_list"


async def test_credential_not_found_and_delete(http: httpx.AsyncClient) -> None:
    assert body(await http.get("/api/credentials/nobody"), 404) == '{"detail":"Credential not found"}'
    assert body(await http.delete("/api/credentials/nobody"), 404) == '{"detail":"Credential not found"}'
    await http.post("/api/credentials", json={"name": "a b/c", "data": {}})
    assert json.loads((await http.get("/api/credentials/a%20b/c")).text)["name"] == "a b/c"
    assert body(await http.delete("/api/credentials/a%20b/c")) == (
        '{"message":"Credential deleted successfully","id":"<ID>","name":"a b/c"}'
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"data": {}},
            '{"detail":[{"type":"missing","loc":["body","name"],"msg":"Field required","input":{"data":{}}}]}',
        ),
        (
            {"name": "  ", "data": []},
            '{"detail":[{"type":"string_too_short","loc":["body","name"],"msg":"String should have at least 1 '
            'character","input":"","ctx":{"min_length":1}},{"type":"dict_type","loc":["body","data"],"msg":"Input '
            'should be a valid dictionary","input":[]}]}',
        ),
        (
            ["not", "an", "object"],
            '{"detail":[{"type":"model_attributes_type","loc":["body"],"msg":"Input should be a valid dictionary '
            'or object to extract fields from","input":["not","an","object"]}]}',
        ),
    ],
)
async def test_credential_validation(http: httpx.AsyncClient, payload: object, expected: str) -> None:
    assert body(await http.post("/api/credentials", json=payload), 422) == expected


async def test_keychain_routes(http: httpx.AsyncClient) -> None:
    cached = await http.post(
        "/api/keychain/612345678901234567/api_token",
        json={"token_data": {"access_token": SECRET}, "credential_type": "bearer", "ttl_seconds": 3600},
    )
    assert body(cached) == (
        '{"status":"success","message":"Keychain entry \'api_token\' cached","keychain_name":"api_token",'
        '"catalog_id":<ID>,"cache_key":"api_token:<ID>:global","expires_at":"<TS>","ttl_seconds":3600,'
        '"auto_renew":false}'
    )
    got = await http.get("/api/keychain/612345678901234567/api_token")
    masked = body(got)
    ttl = json.loads(got.text)["ttl_seconds"]
    assert 3500 < ttl <= 3600
    assert masked.replace(json.dumps(ttl), "<TTL>") == (
        '{"status":"success","keychain_name":"api_token","catalog_id":<ID>,"cache_key":"api_token:<ID>:global",'
        f'"token_data":{{"access_token":"{SECRET}"}},"credential_type":"bearer","cache_type":"token",'
        '"scope_type":"global","expires_at":"<TS>","ttl_seconds":<TTL>,"accessed_at":"<TS>","access_count":1,'
        '"auto_renew":false,"renew_config":null,"expired":false}'
    )
    listed = await http.get("/api/keychain/catalog/612345678901234567")
    assert body(listed) == (
        '{"status":"success","catalog_id":<ID>,"entries":[{"keychain_name":"api_token",'
        '"cache_key":"api_token:<ID>:global","credential_type":"bearer","cache_type":"token","scope_type":"global",'
        '"expires_at":"<TS>","auto_renew":false,"access_count":1}],"count":1}'
    )
    assert SECRET not in listed.text
    assert body(await http.delete("/api/keychain/612345678901234567/api_token")) == (
        '{"status":"success","message":"Keychain entry deleted successfully","keychain_name":"api_token",'
        '"catalog_id":<ID>}'
    )
    assert body(await http.delete("/api/keychain/612345678901234567/api_token")) == (
        '{"status":"error","message":"Keychain entry not found","keychain_name":"api_token","catalog_id":<ID>}'
    )
    assert body(
        await http.get("/api/keychain/612345678901234567/api_token", params={"scope_type": "local"})
    ) == (
        '{"status":"not_found","keychain_name":"api_token","catalog_id":<ID>,"cache_key":"api_token:<ID>:local",'
        '"token_data":null,"credential_type":null,"cache_type":null,"scope_type":null,"expires_at":null,'
        '"ttl_seconds":null,"accessed_at":null,"access_count":null,"auto_renew":null,"renew_config":null,'
        '"expired":null}'
    )


async def test_an_expired_keychain_entry(http: httpx.AsyncClient) -> None:
    await http.post(
        "/api/keychain/77/old",
        json={"token_data": {"t": SECRET}, "credential_type": "bearer", "expires_at": "2020-01-01T00:00:00Z",
              "auto_renew": True, "renew_config": {"endpoint": "https://idp/token"}},
    )  # fmt: skip
    expired = await http.get("/api/keychain/77/old")
    assert body(expired) == (
        '{"status":"expired","keychain_name":"old","catalog_id":77,"cache_key":"old:77:global","token_data":null,'
        '"credential_type":null,"cache_type":null,"scope_type":null,"expires_at":null,"ttl_seconds":null,'
        '"accessed_at":null,"access_count":null,"auto_renew":true,"renew_config":{"endpoint":"https://idp/token"},'
        '"expired":true}'
    )
    assert SECRET not in expired.text


async def test_keychain_validation(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/keychain/abc/x", json={"credential_type": 3})
    assert body(response, 422) == (
        '{"detail":[{"type":"int_parsing","loc":["path","catalog_id"],"msg":"Input should be a valid integer, '
        'unable to parse string as an integer","input":"abc"},{"type":"missing","loc":["body","token_data"],'
        '"msg":"Field required","input":{"credential_type":3}},{"type":"string_type","loc":["body",'
        '"credential_type"],"msg":"Input should be a valid string","input":3}]}'
    )
    bad_scope = await http.post(
        "/api/keychain/1/x", json={"token_data": {}, "credential_type": "b", "scope_type": "x"}
    )
    assert body(bad_scope, 400) == '{"detail":"scope_type must be one of local, global, shared"}'


async def test_internal_routes_are_gated(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/api/internal/wallet/rotate-kek"),
        ("GET", "/api/internal/wallet/key-status"),
        ("GET", "/api/internal/secret-audit"),
    ]:
        response = await http.request(method, path, content=b"not json")
        assert (
            body(response, 403)
            == '{"detail":"Internal API requires Authorization header with Bearer token."}'
        )


async def test_rotate_key_status_and_audit(http: httpx.AsyncClient) -> None:
    await http.post("/api/credentials", json={"name": "gw_audited", "data": {"password": SECRET}})
    await http.get(
        "/api/credentials/gw_audited", params={"include_data": "true", "execution_id": "612400000000000001"}
    )

    rotated = await http.post("/api/internal/wallet/rotate-kek", headers=AUTH)
    credential = json.loads(rotated.text)["credential"]
    assert list(json.loads(rotated.text)) == ["credential", "keychain"]
    assert list(credential) == ["processed", "rewrapped", "skipped", "failed", "last_id"]
    assert credential["rewrapped"] == 0 and credential["skipped"] == credential["processed"] > 0
    assert isinstance(credential["last_id"], str) and credential["last_id"].isdigit()

    status = await http.get("/api/internal/wallet/key-status", headers=AUTH)
    counts = json.loads(status.text)
    assert list(counts) == ["credential", "keychain"] and list(counts["credential"]) == ["v1"]

    audit = await http.get("/api/internal/secret-audit", params={"credential": "gw_audited"}, headers=AUTH)
    assert body(audit) == (
        '{"rows":[{"audit_id":"<ID>","occurred_at":"<TS>","credential":"gw_audited","operation":"get_credential",'
        '"outcome":"ok","worker_id":null,"execution_id":"<ID>","parent_execution_id":null,"server_region":null,'
        '"broker_region":null,"kek_version":"v1","notes":"caller=http"}]}'
    )
    assert SECRET not in audit.text
    too_many = await http.get("/api/internal/secret-audit", params={"limit": "10001"}, headers=AUTH)
    assert too_many.status_code == 422
    bad_time = await http.get("/api/internal/secret-audit", params={"from": "yesterday"}, headers=AUTH)
    assert bad_time.status_code == 422
    bad_batch = await http.post("/api/internal/wallet/rotate-kek", json={"batch_size": 0}, headers=AUTH)
    assert bad_batch.status_code == 422
