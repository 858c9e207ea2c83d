"""The gateway's optional HTTP auth, through the assembled app (docs/security.md).

Backends point at a port nothing listens on: a request the auth lets through answers 503 from
the missing service, one it stops answers 401 or 403 before any call. JWTs are signed with keys
this test makes (tests/helpers/oidc.py); the JWKS comes from a file or from real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway_http.http_auth import ADMIN, READ, WRITE, required_level
from gateway_http.settings import GatewaySettings
from kernel.config import ConfigError
from kernel.mesh_auth import token_digest
from tests.helpers.gateway import in_process_gateway
from tests.helpers.oidc import AUDIENCE, ISSUER, Issuer, served_jwks

NOWHERE = "127.0.0.1:9"
REFUSED = (401, 403)
API_READ = "static-read-token"
API_ADMIN = "static-admin-token"


def settings(**env: str) -> GatewaySettings:
    return GatewaySettings.load(
        {
            "NOETL_MESH_AUTH": "off",
            "NOETL_CATALOG_ADDR": NOWHERE,
            "NOETL_EXECUTION_ADDRS": NOWHERE,
            "NOETL_EVENTS_ADDRS": NOWHERE,
            "NOETL_OUTBOX_ADDR": NOWHERE,
            "NOETL_SECRETS_ADDR": NOWHERE,
            "NOETL_GATEWAY_RPC_TIMEOUT": "1",
            **env,
        }
    )


async def client_for(config: GatewaySettings) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process_gateway(config) as http:
        yield http


@pytest.fixture
def issuer() -> Issuer:
    made = Issuer()
    made.add_key("k1")
    return made


@pytest.fixture
async def http(issuer: Issuer, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    tokens = tmp_path / "api-tokens"
    tokens.write_text(f"ci read {token_digest(API_READ)}\nops admin {token_digest(API_ADMIN)}\n")
    config = settings(
        NOETL_HTTP_AUTH="bearer",
        NOETL_HTTP_API_TOKENS_FILE=str(tokens),
        NOETL_HTTP_JWT_ISSUER=ISSUER,
        NOETL_HTTP_JWT_AUDIENCE=AUDIENCE,
        NOETL_HTTP_JWT_JWKS_FILE=str(issuer.write_jwks(tmp_path / "jwks.json")),
    )
    async for client in client_for(config):
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_off_by_default_nothing_is_asked() -> None:
    async for http in client_for(settings()):
        assert (await http.get("/api/executions")).status_code == 503
        contract = (await http.get("/api/runtime/contract")).json()
        assert contract["auth"]["mode"] == "none"


@pytest.mark.parametrize("path", ["/health", "/api/health", "/api/runtime/contract", "/openapi.json"])
async def test_open_routes_need_no_token(http: httpx.AsyncClient, path: str) -> None:
    assert (await http.get(path)).status_code == 200


async def test_the_contract_reports_bearer_mode(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/runtime/contract")).json()["auth"]["mode"] == "bearer"


async def test_no_token_is_401_with_a_challenge(http: httpx.AsyncClient) -> None:
    for path in ("/api/executions", "/noetl/executions"):
        response = await http.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer realm="noetl"'
        assert response.json() == {"detail": "Authentication required: send Authorization: Bearer <token>"}


async def test_scopes_grant_levels(http: httpx.AsyncClient, issuer: Issuer) -> None:
    reader = bearer(issuer.token(scope="noetl:read"))
    writer = bearer(issuer.token(scope="openid noetl:write"))
    admin = bearer(issuer.token(claims={"permissions": ["noetl:admin"]}))  # Auth0 RBAC spelling

    assert (await http.get("/api/executions", headers=reader)).status_code == 503
    assert (await http.post("/api/execute", json={"path": "x"}, headers=reader)).status_code == 403
    assert (await http.post("/api/execute", json={"path": "x"}, headers=writer)).status_code == 503
    data = "/api/credentials/pg?include_data=true"
    assert (await http.get(data, headers=writer)).status_code == 403
    assert (await http.get(data, headers=admin)).status_code == 503
    query = {"query": "select 1"}
    assert (await http.post("/api/postgres/execute", json=query, headers=writer)).status_code == 403
    assert (await http.post("/noetl/postgres/execute", json=query, headers=admin)).status_code not in REFUSED
    assert (await http.get("/api/credentials/pg", headers=reader)).status_code == 503


async def test_the_cli_session_header_is_accepted(http: httpx.AsyncClient, issuer: Issuer) -> None:
    response = await http.get(
        "/noetl/executions", headers={"x-session-token": issuer.token(scope="noetl:read")}
    )
    assert response.status_code == 503


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("expired", "token expired"),
        ("audience", "wrong audience"),
        ("issuer", "wrong issuer"),
        ("signature", "bad signature"),
        ("unknown key", "no signing key 'k9' in the JWKS"),
        ("garbage", "unknown token"),
    ],
)
async def test_bad_tokens_are_401(http: httpx.AsyncClient, issuer: Issuer, case: str, detail: str) -> None:
    makers: dict[str, Callable[[], str]] = {
        "expired": lambda: issuer.token(scope="noetl:admin", expires_in=-120),
        "audience": lambda: issuer.token(scope="noetl:admin", claims={"aud": "https://someone.else/"}),
        "issuer": lambda: issuer.token(scope="noetl:admin", claims={"iss": "https://evil.test/"}),
        "signature": lambda: issuer.token(
            scope="noetl:admin", signer=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "unknown key": lambda: _other_key_token(issuer),
        "garbage": lambda: "not-a-jwt",
    }
    token = makers[case]()
    response = await http.get("/api/executions", headers=bearer(token))
    assert response.status_code == 401
    assert detail in response.json()["detail"]


def _other_key_token(issuer: Issuer) -> str:
    issuer.add_key("k9")  # signed by a key the gateway's JWKS file does not hold
    return issuer.token(kid="k9", scope="noetl:admin")


async def test_a_token_without_the_scope_is_403(http: httpx.AsyncClient, issuer: Issuer) -> None:
    response = await http.get("/api/executions", headers=bearer(issuer.token(scope="openid profile")))
    assert response.status_code == 403
    assert response.json() == {"detail": "This call needs the read scope"}


async def test_static_api_tokens(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/executions", headers=bearer(API_READ))).status_code == 503
    assert (await http.post("/api/execute", json={"path": "x"}, headers=bearer(API_READ))).status_code == 403
    assert (await http.post("/api/db/init", headers=bearer(API_ADMIN))).status_code not in REFUSED
    assert (await http.get("/api/executions", headers=bearer("nobody-issued-this"))).status_code == 401


async def test_internal_routes_keep_their_own_gate(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/internal/outbox/pending-count", headers=bearer(API_ADMIN))
    assert response.status_code == 503
    assert "NOETL_INTERNAL_API_TOKEN" in response.json()["detail"]


async def test_jwks_over_http_is_fetched_again_for_a_new_key(issuer: Issuer) -> None:
    with served_jwks(issuer) as url:
        config = settings(
            NOETL_HTTP_AUTH="bearer",
            NOETL_HTTP_JWT_ISSUER=ISSUER,
            NOETL_HTTP_JWT_AUDIENCE=AUDIENCE,
            NOETL_HTTP_JWT_JWKS_URL=url,
            NOETL_HTTP_JWT_JWKS_REFETCH_SECONDS="0",
        )
        async for http in client_for(config):
            first = await http.get("/api/executions", headers=bearer(issuer.token(scope="noetl:read")))
            assert first.status_code == 503
            again = await http.get("/api/executions", headers=bearer(issuer.token(scope="noetl:read")))
            assert again.status_code == 503 and issuer.fetches == 1  # cached
            issuer.add_key("k2")  # the provider rotates its signing key
            rotated = await http.get(
                "/api/executions", headers=bearer(issuer.token(kid="k2", scope="noetl:read"))
            )
            assert rotated.status_code == 503 and issuer.fetches == 2


def test_settings_follow_the_auth0_block() -> None:
    config = settings(
        NOETL_HTTP_AUTH="bearer", GATEWAY_AUTH0_DOMAIN="acme.auth0.com", GATEWAY_AUTH0_AUDIENCE=AUDIENCE
    )
    assert config.http_auth.jwt is not None
    assert config.http_auth.jwt.issuer == "https://acme.auth0.com/"
    assert config.http_auth.jwt.audience == AUDIENCE
    assert config.http_auth.jwt.jwks_url == "https://acme.auth0.com/.well-known/jwks.json"


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ConfigError) as caught:
        settings(NOETL_HTTP_AUTH="bearer")
    assert "NOETL_HTTP_AUTH=bearer needs NOETL_HTTP_API_TOKENS_FILE or a JWT issuer" in str(caught.value)
    with pytest.raises(ConfigError, match="differs from GATEWAY_AUTH0_AUDIENCE"):
        settings(
            NOETL_HTTP_AUTH="bearer",
            GATEWAY_AUTH0_DOMAIN="acme.auth0.com",
            GATEWAY_AUTH0_AUDIENCE=AUDIENCE,
            NOETL_HTTP_JWT_AUDIENCE="https://other/",
        )
    with pytest.raises(ConfigError, match="NOETL_HTTP_AUTH must be off or bearer"):
        settings(NOETL_HTTP_AUTH="basic")


@pytest.mark.parametrize(
    ("method", "path", "level"),
    [
        ("GET", "/health", None),
        ("GET", "/api/runtime/shard-info", None),
        ("POST", "/api/internal/outbox/claim", None),
        ("POST", "/api/catalog/delete", None),
        ("GET", "/api/executions/1", READ),
        ("POST", "/noetl/catalog/list", READ),
        ("POST", "/api/catalog/register", WRITE),
        ("POST", "/api/events", WRITE),
        ("GET", "/api/credentials", READ),
        ("GET", "/api/credentials/x?include_data=false", READ),
        ("GET", "/api/credentials/x?include_data=TRUE", ADMIN),
        ("GET", "/api/credentials/x?include_data=maybe", ADMIN),
        ("POST", "/api/credentials", ADMIN),
        ("DELETE", "/api/credentials/x", ADMIN),
        ("GET", "/api/keychain/1/x", ADMIN),
        ("POST", "/api/postgres/execute", ADMIN),
        ("GET", "/api/db/validate", ADMIN),
    ],
)
def test_required_levels(method: str, path: str, level: str | None) -> None:
    route, _, query = path.partition("?")
    assert required_level(method, route, query.encode()) == level
