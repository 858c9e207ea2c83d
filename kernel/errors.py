"""The one error taxonomy of the mesh.

Domain and store code raise these; one gRPC server interceptor maps them to status codes
(`kernel.grpc_server`) and the gateway maps gRPC status back to HTTP
(`gateway_http.errors`). Nothing else translates errors.
"""

from __future__ import annotations

from typing import Any


class MeshError(Exception):
    """Base class. `detail` is what a caller sees: a string, or a structured object."""

    http_status = 500

    def __init__(self, detail: str | dict[str, Any], *, retry_after: int | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else str(detail))
        self.detail = detail
        self.retry_after = retry_after


class InvalidArgument(MeshError):
    """The request itself is malformed (HTTP 400)."""

    http_status = 400


class Unprocessable(MeshError):
    """Well-formed but semantically invalid input (HTTP 422)."""

    http_status = 422


class PayloadTooLarge(MeshError):
    """A request or value over a documented size limit; the message states the limit (HTTP 413)."""

    http_status = 413


class PermissionDenied(MeshError):
    """The caller is known but may not do this (HTTP 403): refusals are audited where they matter."""

    http_status = 403


class NotFound(MeshError):
    http_status = 404


class Conflict(MeshError):
    """A concurrent or already-done operation wins (HTTP 409)."""

    http_status = 409


class AlreadyExists(Conflict):
    pass


class FailedPrecondition(Conflict):
    """The target is in a state that forbids the operation (HTTP 409)."""


class Unavailable(MeshError):
    """A dependency (database, bus, another service) is down or saturated (HTTP 503)."""

    http_status = 503


class Internal(MeshError):
    http_status = 500
