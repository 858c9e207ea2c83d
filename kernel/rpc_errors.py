"""The one mapping between the error taxonomy and gRPC status, in both directions.

Server side: `ErrorInterceptor` turns a raised `MeshError` into a gRPC status whose trailing
metadata carries the taxonomy class and a structured detail, so the gateway and other
services rebuild the exact same error (`from_rpc_error`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from noetl.v1 import events_pb2

from kernel import errors
from kernel.db import LOST_CONNECTION, db_unavailable
from kernel.handlers import responses, rewrap

log = logging.getLogger(__name__)

KIND_KEY = "noetl-error-kind"
DETAIL_KEY = "noetl-error-detail"
RETRY_AFTER_KEY = "retry-after"

_CODES: dict[type[errors.MeshError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unprocessable: grpc.StatusCode.INVALID_ARGUMENT,
    errors.PayloadTooLarge: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Internal: grpc.StatusCode.INTERNAL,
}
_KINDS: dict[str, type[errors.MeshError]] = {cls.__name__: cls for cls in _CODES}
_BY_CODE: dict[grpc.StatusCode, type[errors.MeshError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.ALREADY_EXISTS: errors.AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.ABORTED: errors.Conflict,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
}


_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The status code with this number (UNKNOWN for a number gRPC does not define)."""
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def grpc_code(error: errors.MeshError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.INTERNAL


def trailing_metadata(error: errors.MeshError) -> tuple[tuple[str, str], ...]:
    items = [(KIND_KEY, type(error).__name__), (DETAIL_KEY, detail_json(error))]
    if error.retry_after is not None:
        items.append((RETRY_AFTER_KEY, str(error.retry_after)))
    return tuple(items)


def status_message(error: errors.MeshError) -> str:
    """The gRPC status message of `error`: its detail, as JSON when structured."""
    return error.detail if isinstance(error.detail, str) else json.dumps(error.detail)


def detail_json(error: errors.MeshError) -> str:
    return json.dumps(error.detail)


def rebuild(
    code: grpc.StatusCode, message: str, kind: str, detail: str | None, retry_after: int | None
) -> errors.MeshError:
    """The taxonomy error a peer reported (or the closest one for a transport failure): its
    status `code` and `message`, its class name `kind` and `detail` as JSON when it sent them."""
    cls = _KINDS.get(kind)
    value: Any = message or code.name
    if detail is not None:
        try:
            value = json.loads(detail)
        except ValueError:
            value = detail
    if cls is None:
        cls = _BY_CODE.get(code, errors.Internal)
        if cls is errors.Unavailable and retry_after is None:
            retry_after = 1
    return cls(value, retry_after=retry_after)


def from_rpc_error(exc: grpc.aio.AioRpcError) -> errors.MeshError:
    """Rebuilds the taxonomy error a peer raised (or the closest one for a transport failure)."""
    metadata = {key: value for key, value in (exc.trailing_metadata() or ()) if isinstance(value, str)}
    retry_after = int(metadata[RETRY_AFTER_KEY]) if metadata.get(RETRY_AFTER_KEY, "").isdigit() else None
    return rebuild(
        exc.code(), exc.details() or "", metadata.get(KIND_KEY, ""), metadata.get(DETAIL_KEY), retry_after
    )


def as_mesh_error(exc: Exception, operation: str) -> errors.MeshError:
    """What a handler's exception answers: itself when a `MeshError`; 503 `timeout` for a wait
    that ran out (a query, a publish, a peer: not necessarily the database's); 503
    `db_unavailable` for a lost connection (the database or a peer is restarting: the caller
    retries, nothing is wrong here); anything else `Internal`, logged with its traceback."""
    if isinstance(exc, errors.MeshError):
        return exc
    if isinstance(exc, TimeoutError):  # an OSError too, so before the lost connections
        log.warning("%s: timed out (%s); answered 503", operation, exc or type(exc).__name__)
        return errors.Unavailable(
            {"code": "timeout", "message": f"{operation} timed out; retry shortly"}, retry_after=1
        )
    if isinstance(exc, LOST_CONNECTION):
        log.warning("%s: connection lost (%s: %s); answered 503", operation, type(exc).__name__, exc)
        return db_unavailable(operation)
    log.error("unhandled error in %s", operation, exc_info=exc)
    return errors.Internal(str(exc) or type(exc).__name__)


def _wrap_unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, as_mesh_error(exc, behavior.__qualname__))
        raise AssertionError("unreachable")

    return wrapper


def _wrap_stream_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in responses(behavior, request, context):
                yield item
        except errors.MeshError as exc:
            await _abort(context, exc)

    return wrapper


async def _abort(context: grpc.aio.ServicerContext, exc: errors.MeshError) -> None:
    context.set_trailing_metadata(trailing_metadata(exc))
    await context.abort(grpc_code(exc), status_message(exc))


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps `MeshError` (and unexpected exceptions) raised by servicers to gRPC status."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        return rewrap(
            await continuation(handler_call_details), single=_wrap_unary, streaming=_wrap_stream_response
        )


class ClientErrorInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Callers of unary RPCs see the peer's `MeshError`, never a raw `AioRpcError`."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        call = await continuation(client_call_details, request)
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None


def item_error(error: errors.MeshError) -> events_pb2.EmitItemError:
    """One item's failure in a batched call (`EmitMany`, `AppendMany`), as its own call would
    have reported it."""
    failure = events_pb2.EmitItemError(
        code=grpc_code(error).value[0],
        message=status_message(error),
        kind=type(error).__name__,
        detail_json=detail_json(error).encode(),
    )
    if error.retry_after is not None:
        failure.retry_after = error.retry_after
    return failure


def from_item_error(failure: events_pb2.EmitItemError) -> errors.MeshError:
    """The error `item_error` reported, rebuilt as the same `MeshError`."""
    return rebuild(
        status_code(failure.code),
        failure.message,
        failure.kind,
        failure.detail_json.decode() or None,
        failure.retry_after if failure.HasField("retry_after") else None,
    )
