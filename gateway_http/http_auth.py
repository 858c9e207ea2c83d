"""Optional HTTP authentication of the gateway: one ASGI middleware (docs/security.md).

Off by default, so existing callers and the `noetl` CLI work unchanged on a local stack. With
`NOETL_HTTP_AUTH=bearer`, every request but the open ones (health, metrics, the runtime contract,
the OpenAPI document, shard arithmetic) needs `Authorization: Bearer <token>` (or the CLI's
`x-session-token`), accepted as a static API token (`NOETL_HTTP_API_TOKENS_FILE`) or a JWT of
the configured OIDC issuer and audience. Three levels, each including the ones below it:

- `read`: GET/HEAD, plus the read-only POSTs `/api/catalog/list` and `/api/catalog/resource`;
- `write`: every other call (register, execute, events, claims, ...);
- `admin`: credential data (`include_data`), credential and keychain changes, keychain reads,
  `/api/postgres/execute` and `/api/db/*`.

The internal routes keep their own token gate (http-api.md §1.8) and are not checked here.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway_http.encoding import json_response
from gateway_http.jwt_keys import InvalidToken, JwtSettings, JwtVerifier
from kernel.config import EnvReader
from kernel.mesh_auth import WatchedFile, token_digest

log = logging.getLogger(__name__)

OFF = "off"
BEARER = "bearer"
READ = "read"
WRITE = "write"
ADMIN = "admin"
LEVELS = (READ, WRITE, ADMIN)
OPEN_PATHS = frozenset({"/health", "/metrics", "/openapi.json", "/api/health", "/api/runtime/contract"})
_OPEN_PREFIXES = ("/api/runtime/shard-info",)
_OWN_GATE = ("/api/internal/", "/api/catalog/delete", "/api/catalog/restore")
_ADMIN_PREFIXES = ("/api/postgres/", "/api/db/", "/api/keychain/")
_READ_POSTS = frozenset({"/api/catalog/list", "/api/catalog/resource"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
UNAUTHENTICATED = "Authentication required: send Authorization: Bearer <token>"


@dataclass(frozen=True, slots=True)
class HttpAuthSettings:
    mode: str = OFF
    # Lines `<name> <read|write|admin> <sha256 hex of the token>`.
    tokens_file: str = ""
    jwt: JwtSettings | None = None
    # Level → the JWT scope (or Auth0 permission) that grants it.
    scopes: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.mode == BEARER

    @classmethod
    def read(cls, env: EnvReader, auth0: Mapping[str, str]) -> HttpAuthSettings:
        """`NOETL_HTTP_AUTH` and friends; JWT defaults follow the contract's `auth0` block."""
        mode = env.text("NOETL_HTTP_AUTH", OFF).lower()
        scopes = {level: env.text(f"NOETL_HTTP_SCOPE_{level.upper()}", f"noetl:{level}") for level in LEVELS}
        if mode == OFF:
            return cls(mode=OFF, scopes=scopes)
        if mode != BEARER:
            env.problem(f"NOETL_HTTP_AUTH must be {OFF} or {BEARER}, got {mode!r}")
            return cls(mode=OFF, scopes=scopes)
        tokens_file = env.text("NOETL_HTTP_API_TOKENS_FILE")
        if tokens_file:
            try:
                parse_api_tokens(WatchedFile(tokens_file).text())
            except (OSError, ValueError) as exc:
                env.problem(f"NOETL_HTTP_API_TOKENS_FILE: {exc}")
        jwt_settings = _jwt(env, auth0)
        if not tokens_file and jwt_settings is None:
            env.problem(
                "NOETL_HTTP_AUTH=bearer needs NOETL_HTTP_API_TOKENS_FILE or a JWT issuer "
                "(NOETL_HTTP_JWT_ISSUER, or GATEWAY_AUTH0_DOMAIN)"
            )
        return cls(mode=BEARER, tokens_file=tokens_file, jwt=jwt_settings, scopes=scopes)


def _jwt(env: EnvReader, auth0: Mapping[str, str]) -> JwtSettings | None:
    domain = auth0.get("domain", "")
    issuer = env.text("NOETL_HTTP_JWT_ISSUER", f"https://{domain}/" if domain else "")
    if not issuer:
        return None
    audience = env.text("NOETL_HTTP_JWT_AUDIENCE", auth0.get("audience", ""))
    if auth0.get("audience") and audience != auth0["audience"]:
        env.problem(
            "NOETL_HTTP_JWT_AUDIENCE differs from GATEWAY_AUTH0_AUDIENCE: the contract would send the CLI "
            "for tokens this gateway refuses"
        )
    jwks_file = env.text("NOETL_HTTP_JWT_JWKS_FILE")
    jwks_url = env.text(
        "NOETL_HTTP_JWT_JWKS_URL", f"https://{domain}/.well-known/jwks.json" if domain else ""
    )
    if not audience:
        env.problem("NOETL_HTTP_JWT_AUDIENCE is required with a JWT issuer")
    if not jwks_file and not jwks_url:
        env.problem("a JWT issuer needs NOETL_HTTP_JWT_JWKS_FILE or NOETL_HTTP_JWT_JWKS_URL")
    algorithms = tuple(
        a.strip() for a in env.text("NOETL_HTTP_JWT_ALGORITHMS", "RS256,ES256").split(",") if a.strip()
    )
    return JwtSettings(
        issuer=issuer,
        audience=audience,
        jwks_file=jwks_file,
        jwks_url=jwks_url,
        algorithms=algorithms,
        cache_seconds=env.number("NOETL_HTTP_JWT_JWKS_CACHE_SECONDS", 300.0, minimum=0.0),
        refetch_seconds=env.number("NOETL_HTTP_JWT_JWKS_REFETCH_SECONDS", 30.0, minimum=0.0),
    )


def parse_api_tokens(text: str) -> tuple[tuple[str, str, str], ...]:
    """(name, level, digest) of each line `<name> <level> <sha256 hex>`.

    Raises:
        ValueError: a line is malformed or names an unknown level.
    """
    entries: list[tuple[str, str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or parts[1] not in LEVELS or len(parts[2]) != 64:
            raise ValueError(f"line {number}: expected '<name> <read|write|admin> <sha256 hex digest>'")
        entries.append((parts[0], parts[1], parts[2].lower()))
    return tuple(entries)


def required_level(method: str, path: str, query: bytes) -> str | None:
    """The level a request needs; None for open routes and those behind the internal gate."""
    if path.startswith("/noetl/"):
        path = "/api/" + path.removeprefix("/noetl/")
    if path in OPEN_PATHS or path.startswith(_OPEN_PREFIXES) or path.startswith(_OWN_GATE):
        return None
    if path.startswith(_ADMIN_PREFIXES):
        return ADMIN
    reading = method in ("GET", "HEAD")
    if path.startswith("/api/credentials"):
        return READ if reading and not _asks_for_data(query) else ADMIN
    if reading or method == "OPTIONS" or (method == "POST" and path in _READ_POSTS):
        return READ
    return WRITE


def _asks_for_data(query: bytes) -> bool:
    """Any `include_data` value but a clear false counts: a value the route rejects costs nothing."""
    values = urllib.parse.parse_qs(query.decode("latin-1"), keep_blank_values=True).get("include_data", [])
    return any(value.strip().lower() not in _FALSE for value in values)


def _granted(level: str) -> frozenset[str]:
    return frozenset(LEVELS[: LEVELS.index(level) + 1])


class ApiTokens:
    """Static API tokens by digest, from a file re-read when it changes."""

    def __init__(self, path: str) -> None:
        self._file = WatchedFile(path)

    def levels(self, token: str) -> tuple[str, frozenset[str]] | None:
        try:
            entries = parse_api_tokens(self._file.text())
        except ValueError as exc:
            log.error("%s is invalid (%s); no API token is accepted until it is fixed", self._file.path, exc)
            return None
        digest = token_digest(token)
        found: tuple[str, frozenset[str]] | None = None
        for name, level, expected in entries:
            if hmac.compare_digest(digest, expected):
                found = (name, _granted(level))
        return found


class HttpAuth:
    """The middleware: 401 without an acceptable token, 403 without the level the route needs."""

    def __init__(self, app: ASGIApp, settings: HttpAuthSettings) -> None:
        self.app = app
        self._scopes = settings.scopes
        self._tokens = ApiTokens(settings.tokens_file) if settings.tokens_file else None
        self._jwt = JwtVerifier(settings.jwt) if settings.jwt is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        needed = required_level(scope["method"], scope["path"], scope.get("query_string", b""))
        if needed is None:
            await self.app(scope, receive, send)
            return
        token = _presented(scope)
        if token is None:
            await _refuse(401, UNAUTHENTICATED)(scope, receive, send)
            return
        try:
            who, granted = await self._authenticate(token)
        except InvalidToken as exc:
            await _refuse(401, f"Invalid bearer token: {exc}")(scope, receive, send)
            return
        if needed not in granted:
            log.info("refused %s %s to %s: needs %s", scope["method"], scope["path"], who, needed)
            await json_response({"detail": f"This call needs the {needed} scope"}, 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _authenticate(self, token: str) -> tuple[str, frozenset[str]]:
        """Raises InvalidToken."""
        if self._tokens is not None:
            found = self._tokens.levels(token)
            if found is not None:
                return found
        if self._jwt is None or token.count(".") != 2:
            raise InvalidToken("unknown token")
        claims = await self._jwt.verify(token)
        held = [level for level in LEVELS if self._scopes[level] in claims.scopes]
        granted = _granted(max(held, key=LEVELS.index)) if held else frozenset()
        return f"jwt:{claims.subject}", granted


def _presented(scope: Scope) -> str | None:
    headers: dict[bytes, bytes] = dict(scope["headers"])
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    session = headers.get(b"x-session-token", b"").decode("latin-1").strip()
    return session or None


def _refuse(status: int, detail: str) -> ASGIApp:
    return json_response({"detail": detail}, status, headers={"www-authenticate": 'Bearer realm="noetl"'})
