"""Internal wallet routes → SecretsService (http-api.md §12.6-§12.8), behind the token gate.

Every route is `internal=True`: the app wraps it with the gate of `gateway_http/internal_gate.py`
before the handler reads its body.

`rotate-kek` also accepts `credential_after` (an id) and `keychain_after` (a cache key) to
resume a scan where a previous call's `last_id` left it (a project addition; calling again from
the start works too, rows already re-wrapped are skipped).
"""

from __future__ import annotations

from noetl.v1 import secrets_pb2, secrets_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response

from gateway_http import wallet_views
from gateway_http.encoding import json_response
from gateway_http.openapi.build import BACKEND, BODY, Operation, array, json_body, obj, ok, query_param, ref
from gateway_http.routes import Endpoint, set_present
from gateway_http.validation import Problems, read_json

MAX_BATCH_SIZE = 10000
MAX_BATCHES = 1_000_000
DEFAULT_AUDIT_LIMIT = 100
MAX_AUDIT_LIMIT = 10000


class WalletRoutes:
    def __init__(self, secrets: secrets_pb2_grpc.SecretsServiceStub, rpc_timeout: float) -> None:
        self._secrets = secrets
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "/internal/wallet/rotate-kek",
                self.rotate,
                ("POST",),
                Operation(
                    "wallet_rotate_kek",
                    "internal",
                    "Re-wrap data keys not under the current KEK version",
                    ok("Per-table progress", ref("Rotation")),
                    (*BODY, "500", *BACKEND),
                    body=json_body(
                        obj(
                            {
                                "batch_size": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": MAX_BATCH_SIZE,
                                    "default": 100,
                                },
                                "max_batches": {
                                    "type": "integer",
                                    "minimum": 1,
                                    "maximum": MAX_BATCHES,
                                    "default": 1000,
                                },
                                "credential_after": ref("IdInput"),
                                "keychain_after": {"type": "string"},
                            },
                            [],
                        ),
                        required=False,
                    ),
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/wallet/key-status",
                self.key_status,
                ("GET",),
                Operation(
                    "wallet_key_status",
                    "internal",
                    "Rows per KEK version",
                    ok("Counts, keys sorted", ref("KeyStatus")),
                    BACKEND,
                ),
                internal=True,
            ),
            Endpoint(
                "/internal/secret-audit",
                self.audit,
                ("GET",),
                Operation(
                    "secret_audit",
                    "internal",
                    "The secret access audit, newest first",
                    ok("Audit rows", obj({"rows": array(ref("AuditRow"))})),
                    ("422", *BACKEND),
                    parameters=(
                        query_param("credential", {"type": "string"}, "Credential name"),
                        query_param("execution_id", ref("IdText"), "Execution id"),
                        query_param("from", {"type": "string", "format": "date-time"}, "RFC 3339, inclusive"),
                        query_param("to", {"type": "string", "format": "date-time"}, "RFC 3339"),
                        query_param(
                            "limit",
                            {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_AUDIT_LIMIT,
                                "default": DEFAULT_AUDIT_LIMIT,
                            },
                            "Rows",
                        ),
                    ),
                ),
                internal=True,
            ),
        ]

    async def rotate(self, request: Request) -> Response:
        """§12.6 → `Rotate`; an empty body takes the defaults (100 rows a batch, 1000 batches)."""
        problems = Problems()
        fields = problems.body(await read_json(request, required=False))
        batch_size = fields.number("batch_size", 100, minimum=1, maximum=MAX_BATCH_SIZE)
        max_batches = fields.number("max_batches", 1000, minimum=1, maximum=MAX_BATCHES)
        credential_after = fields.identifier("credential_after")
        keychain_after = fields.text("keychain_after")
        problems.check()
        message = secrets_pb2.RotateRequest(batch_size=batch_size, max_batches=max_batches)
        set_present(message, credential_after=credential_after, keychain_after=keychain_after)
        rotated = await self._secrets.Rotate(message, timeout=self._timeout)
        return json_response(
            {
                "credential": wallet_views.rotation(rotated.credential),
                "keychain": wallet_views.rotation(rotated.keychain),
            }
        )

    async def key_status(self, request: Request) -> Response:
        """§12.7 → `KeyStatus`: rows per KEK version, `invalid` for values that are not envelopes."""
        status = await self._secrets.KeyStatus(secrets_pb2.KeyStatusRequest(), timeout=self._timeout)
        return json_response(
            {
                "credential": wallet_views.key_counts(status.credential),
                "keychain": wallet_views.key_counts(status.keychain),
            }
        )

    async def audit(self, request: Request) -> Response:
        """§12.8 → `ListAudit`, newest first."""
        problems = Problems()
        query = problems.query(request)
        credential = query.text("credential")
        execution_id = query.identifier("execution_id")
        since = query.timestamp("from")
        until = query.timestamp("to")
        limit = query.number("limit", DEFAULT_AUDIT_LIMIT, minimum=1, maximum=MAX_AUDIT_LIMIT)
        problems.check()
        message = secrets_pb2.ListAuditRequest(limit=limit)
        set_present(message, credential=credential, execution_id=execution_id)
        if since is not None:
            message.from_time.FromDatetime(since)
        if until is not None:
            message.to_time.FromDatetime(until)
        listed = await self._secrets.ListAudit(message, timeout=self._timeout)
        return json_response({"rows": [wallet_views.audit_row(row) for row in listed.rows]})
