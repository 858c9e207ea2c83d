"""The `http` tool (dsl.md §9.4).

Result data `{status_code, headers, data, body}`, the parsed JSON body (or the text) under both
`data` and `body` (fixtures C5). A non-2xx answer is a tool error whose result still carries that
data, so policy rules see `output.http.status` (§9.11); a connection failure or a timeout is an
error of kind `connection` / `timeout`, both retryable.

`auth: <alias>` (alias `credential:`) names a credential resolved through the secrets service: `token` /
`access_token` / `bearer_token` → `Authorization: Bearer`, `username`|`user` + `password` → basic
auth, `api_key` → the header named by `header` (default `X-API-Key`), and a `headers` map is added
as it is. Headers the playbook sets itself win.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import httpx

from worker.credentials import SecretError, credential_alias
from worker.tools.base import ToolCall, ToolResult

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT_SECONDS = 30.0
_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


class HttpTool:
    """One connection pool per `verify_ssl` setting, shared by every command of the worker."""

    def __init__(self) -> None:
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def _client(self, verify: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify)
        if client is None:
            client = httpx.AsyncClient(verify=verify, limits=_LIMITS, trust_env=False)
            self._clients[verify] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def run(self, call: ToolCall) -> ToolResult:
        config = call.config
        url = config.get("url") or config.get("endpoint")
        if not isinstance(url, str) or not url:
            return ToolResult(ok=False, data=None, error="http tool needs 'url'")
        method = str(config.get("method") or "GET").upper()
        if method not in METHODS:
            return ToolResult(ok=False, data=None, error=f"http method '{method}' is not supported")
        try:
            headers = {**await _auth_headers(call), **_text_map(config.get("headers"))}
        except SecretError as exc:
            return ToolResult(ok=False, data=None, error=str(exc))
        timeout = _timeout(config, call.timeout)
        client = self._client(_flag(config.get("verify_ssl"), True))
        try:
            request = client.build_request(
                method,
                url,
                # httpx replaces the query of `url` with `params`; keep both (params win).
                params=httpx.URL(url).params.merge(_text_map(config.get("params"))),
                headers=headers,
                timeout=timeout,
                **_body(config),
            )
            response = await client.send(
                request, follow_redirects=_flag(config.get("follow_redirects"), True)
            )
        except httpx.TimeoutException as exc:
            return ToolResult(
                ok=False,
                data=None,
                error=f"timeout: {method} {url} exceeded {timeout:g}s ({type(exc).__name__})",
                error_kind="timeout",
            )
        except (httpx.TransportError, OSError) as exc:
            return ToolResult(
                ok=False,
                data=None,
                error=f"connection error: {method} {url}: {type(exc).__name__}: {exc}",
                error_kind="connection",
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, TypeError) as exc:
            return ToolResult(ok=False, data=None, error=f"http request is invalid: {exc}")
        data = _result(response)
        if response.is_success:
            return ToolResult(ok=True, data=data)
        reason = response.reason_phrase or ""
        return ToolResult(
            ok=False, data=data, error=f"HTTP {response.status_code} {reason}".rstrip() + f": {method} {url}"
        )


def _result(response: httpx.Response) -> dict[str, Any]:
    body = _parsed(response)
    return {
        "status_code": response.status_code,
        "headers": dict(response.headers),
        "data": body,
        "body": body,
    }


def _parsed(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return response.text


def _body(config: Mapping[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments of the request body: `json`, then `body`, `data`/`payload`, `form`."""
    if config.get("json") is not None:
        return {"json": config["json"]}
    raw = config.get("body")
    if raw is not None:
        if isinstance(raw, str | bytes):
            return {"content": raw}
        return {"json": raw}
    for legacy in ("data", "payload"):
        if config.get(legacy) is not None:
            return {"json": config[legacy]}
    form = config.get("form")
    if isinstance(form, Mapping):
        return {"data": _text_map(form)}
    return {}


def _text(value: Any) -> str:
    """A header or param value as text: numbers as their decimal text, maps and lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, separators=(",", ":"))


def _text_map(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(key): _text(value) for key, value in raw.items() if value is not None}


def _flag(raw: Any, default: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip():
        return raw.strip().lower() not in {"false", "0", "no", "off"}
    return default


def _timeout(config: Mapping[str, Any], budget: float | None) -> float:
    own = config.get("timeout", config.get("timeout_seconds"))
    seconds = (
        float(own)
        if isinstance(own, int | float) and not isinstance(own, bool) and own > 0
        else DEFAULT_TIMEOUT_SECONDS
    )
    return seconds if budget is None else min(seconds, budget)


async def _auth_headers(call: ToolCall) -> dict[str, str]:
    """Headers from the `auth` credential (none without one).

    Raises:
        SecretError: the credential cannot be resolved.
    """
    alias = credential_alias(call.config)
    if alias is None:
        return {}
    data = await call.secrets.credential(alias)
    if not isinstance(data, Mapping):
        raise SecretError(f"credential '{alias}' holds no fields")
    headers = _text_map(data.get("headers"))
    token = next((data[k] for k in ("token", "access_token", "bearer_token") if data.get(k)), None)
    user = data.get("username") or data.get("user")
    if token is not None:
        headers.setdefault("Authorization", f"Bearer {token}")
    elif user and data.get("password") is not None:
        basic = base64.b64encode(f"{user}:{data['password']}".encode()).decode()
        headers.setdefault("Authorization", f"Basic {basic}")
    if data.get("api_key"):
        headers.setdefault(str(data.get("header") or "X-API-Key"), _text(data["api_key"]))
    if not headers:
        raise SecretError(f"credential '{alias}' has no token, username/password, api_key or headers")
    return headers
