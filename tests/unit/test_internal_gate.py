"""The internal token gate's decision table (http-api.md §1.8), without a server."""

from __future__ import annotations

import hmac

import pytest
from starlette.exceptions import HTTPException

from gateway_http.internal_gate import BAD_SCHEME, MISSING_HEADER, NOT_CONFIGURED, WRONG_TOKEN, check
from gateway_http.settings import GatewaySettings

TOKEN = "tok-123"


@pytest.mark.parametrize(
    ("expected", "header", "status", "detail"),
    [
        ("", f"Bearer {TOKEN}", 503, NOT_CONFIGURED),
        ("", None, 503, NOT_CONFIGURED),
        (TOKEN, None, 403, MISSING_HEADER),
        (TOKEN, "", 403, MISSING_HEADER),
        (TOKEN, TOKEN, 403, BAD_SCHEME),
        (TOKEN, f"Basic {TOKEN}", 403, BAD_SCHEME),
        (TOKEN, "Bearer ", 403, BAD_SCHEME),
        (TOKEN, "Bearer wrong", 403, WRONG_TOKEN),
        (TOKEN, f"Bearer {TOKEN} ", 403, WRONG_TOKEN),
    ],
)
def test_refusals(expected: str, header: str | None, status: int, detail: str) -> None:
    with pytest.raises(HTTPException) as refused:
        check(expected, header)
    assert (refused.value.status_code, refused.value.detail) == (status, detail)


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}"])
def test_the_right_token_passes(header: str) -> None:
    check(TOKEN, header)


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(hmac, "compare_digest", recording)
    check(TOKEN, f"Bearer {TOKEN}")
    assert calls == [(TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize(("raw", "token"), [(" tok \n", "tok"), ("\t\n ", ""), ("", "")])
def test_the_configured_token_is_trimmed(raw: str, token: str) -> None:
    settings = GatewaySettings.load(
        {"NOETL_MESH_AUTH": "off", "NOETL_CATALOG_ADDR": "127.0.0.1:9", "NOETL_INTERNAL_API_TOKEN": raw}
    )
    assert settings.internal_api_token == token
