"""Component schemas and responses every area uses: errors, ids, timestamps, versions, health."""

from __future__ import annotations

from gateway_http.http_auth import LEVELS, UNAUTHENTICATED
from gateway_http.openapi.build import JSON, Schema, array, obj, ref, response_ref, retry_after

ERROR_RESPONSES = {
    "400": "BadRequest",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "PayloadTooLarge",
    "422": "ValidationFailed",
    "500": "ServerError",
    "503": "Unavailable",
    "504": "Timeout",
}
# The answers of HTTP authentication (gateway_http/http_auth.py), only when it is switched on.
AUTH_RESPONSES = {"401": "Unauthenticated", "403": "InsufficientScope"}
_ONLY_WITH_AUTH = "Only with HTTP auth on (`NOETL_HTTP_AUTH=bearer`, docs/security.md): "


def responses() -> dict[str, Schema]:
    def error(description: str, schema: str, *, retry: bool = False) -> Schema:
        response: Schema = {"description": description, "content": {JSON: {"schema": ref(schema)}}}
        if retry:
            response["headers"] = {"Retry-After": retry_after()}
        return response

    return {
        "BadRequest": error('The request is wrong: `{"detail": "<message>"}`', "Error"),
        "Forbidden": error(
            "Internal token gate: missing header, not `Bearer <token>`, or a different token", "Error"
        ),
        "NotFound": error('Not found: `{"detail": "<message>"}`', "Error"),
        "PayloadTooLarge": error(
            "The body is over the route's limit; the message states the limit and the variable that"
            ' sets it: `{"detail": "<message>"}`',
            "Error",
        ),
        "Conflict": error('Conflict: a message or `{"code": ...}`', "ServiceError", retry=True),
        "ValidationFailed": error(
            'Request validation (FastAPI list form), or a rule of the service (`{"detail": "<message>"}`)',
            "ValidationError",
        ),
        "ServerError": error('Failure: `{"detail": "<message>"}`', "Error"),
        "Unavailable": error(
            "A backend is down or saturated (`Retry-After`), or the internal API is not configured",
            "ServiceError",
            retry=True,
        ),
        "Timeout": error("The request ran longer than 1799 s", "Error"),
        "Unauthenticated": {
            "description": _ONLY_WITH_AUTH + "no bearer token, or one that is not accepted (an unknown API"
            " token; a JWT expired, of another issuer or audience, or badly signed)",
            "headers": {
                "WWW-Authenticate": {
                    "description": "The challenge",
                    "schema": {"const": 'Bearer realm="noetl"'},
                }
            },
            "content": {
                JSON: {
                    "schema": ref("Unauthenticated"),
                    "examples": {
                        "missing": {"value": {"detail": UNAUTHENTICATED}},
                        "invalid": {"value": {"detail": "Invalid bearer token: unknown token"}},
                    },
                }
            },
        },
        "InsufficientScope": {
            "description": _ONLY_WITH_AUTH + "the token does not hold the level this call needs",
            "content": {
                JSON: {
                    "schema": ref("InsufficientScope"),
                    "examples": {"admin": {"value": {"detail": "This call needs the admin scope"}}},
                }
            },
        },
    }


def auth_responses() -> dict[str, Schema]:
    """HTTP auth's 401 and 403, as references."""
    return {status: response_ref(name) for status, name in AUTH_RESPONSES.items()}


def security_schemes() -> dict[str, Schema]:
    return {
        "internalToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The service-account token configured as NOETL_INTERNAL_API_TOKEN",
        },
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "HTTP authentication, off by default; `NOETL_HTTP_AUTH=bearer` turns it on (docs/security.md)."
                " The token is a JWT of the configured OIDC issuer and audience, or a static API token"
                " (`NOETL_HTTP_API_TOKENS_FILE`). Levels, each including the ones before it: `read` (GET,"
                " `catalog/list`, `catalog/resource`), `write` (every other call), `admin` (credential data,"
                " credential and keychain changes, keychain reads, `postgres/execute`, `db/*`)."
            ),
        },
        "sessionToken": {
            "type": "apiKey",
            "in": "header",
            "name": "x-session-token",
            "description": "The same token as `bearerAuth`, in the header the `noetl` CLI sends",
        },
    }


def _error_schemas() -> dict[str, Schema]:
    return {
        "Error": obj({"detail": {"type": "string"}}),
        "Unauthenticated": obj(
            {
                "detail": {
                    "anyOf": [
                        {"const": UNAUTHENTICATED},
                        {"type": "string", "pattern": "^Invalid bearer token: "},
                    ]
                }
            }
        ),
        "InsufficientScope": obj(
            {"detail": {"enum": [f"This call needs the {level} scope" for level in LEVELS]}}
        ),
        "StructuredError": obj({"detail": obj({"code": {"type": "string"}}, [])}),
        "ServiceError": obj(
            {"detail": {"anyOf": [{"type": "string"}, obj({"code": {"type": "string"}}, ["code"])]}}
        ),
        "ValidationError": obj(
            {"detail": {"anyOf": [{"type": "string"}, array(ref("ValidationErrorItem"), minItems=1)]}}
        ),
        "ValidationErrorItem": obj(
            {
                "type": {"type": "string"},
                "loc": array({"type": ["string", "integer"]}),
                "msg": {"type": "string"},
                "input": {},
                "ctx": {"type": "object"},
            },
            ["type", "loc", "msg", "input"],
            additionalProperties=False,
        ),
    }


def _value_schemas() -> dict[str, Schema]:
    return {
        "IdInput": {
            "description": "A 64-bit id as a JSON number or a decimal string (http-api.md §1.7)",
            "anyOf": [
                {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1},
                {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
            ],
        },
        "IdText": {
            "description": "A 64-bit id as decimal text",
            "type": "string",
            "pattern": "^-?[0-9]{1,19}$",
        },
        "IdString": {
            "description": "A 64-bit id sent as a decimal string",
            "type": "string",
            "pattern": "^-?[0-9]+$",
        },
        "IdNumber": {
            "description": "A 64-bit id sent as a JSON number",
            "type": "integer",
            "format": "int64",
        },
        "Timestamp": {"description": "RFC 3339, UTC, `Z` suffix", "type": "string", "format": "date-time"},
        "VersionInput": {
            "description": "A version number, a numeric string or `latest`",
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 2147483647},
                {"type": "string", "pattern": "^[0-9]{1,9}$"},
                {"const": "latest"},
            ],
        },
        "HealthStatus": obj({"status": {"const": "ok"}}),
        "PoolStatus": obj(
            {
                "pool_min": {"type": "integer"},
                "pool_max": {"type": "integer"},
                "pool_size": {"type": "integer"},
                "pool_available": {"type": "integer"},
                "requests_waiting": {"type": "integer"},
                "utilization": {"type": "number"},
                "slots_available": {"type": "integer"},
                "status": {"type": "string"},
            }
        ),
    }


def error_responses(*statuses: str) -> dict[str, Schema]:
    """The shared error responses of these statuses, as references."""
    return {status: response_ref(ERROR_RESPONSES[status]) for status in statuses}


def schemas() -> dict[str, Schema]:
    return {**_error_schemas(), **_value_schemas()}
