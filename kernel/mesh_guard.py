"""The server side of mesh authentication: who is calling, and may they (one interceptor).

A call without valid credentials gets UNAUTHENTICATED; a known caller whose role the policy does
not list for the RPC gets PERMISSION_DENIED (kernel/mesh_policy.py). Health and
reflection stay open. The caller's identity is available to servicers through `current_caller()`,
and `worker_refusal` tells whether it may act as the worker a request names.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
from prometheus_client import Counter

from kernel.handlers import Behavior, responses
from kernel.mesh_auth import MTLS, OFF, TOKEN, MeshAuth, TokenTable, bearer, instance_of, role_of
from kernel.mesh_policy import POLICY, WORKER, Rule, is_open
from kernel.mesh_tls import server_credentials

log = logging.getLogger(__name__)

REFUSALS = Counter("noetl_mesh_auth_refusals_total", "gRPC calls refused by mesh auth", ["rpc", "reason"])
_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("mesh_caller", default=None)
_COMMON_NAME = "x509_common_name"
# A worker's request names another worker than the one its credentials prove.
NOT_THIS_WORKER = "not_this_worker"


def current_caller() -> str | None:
    """The authenticated identity of the unary or client-streaming RPC being served (None with mesh
    auth off, and in server-streaming RPCs)."""
    return _CALLER.get()


def current_worker() -> str | None:
    """The worker id the caller's credentials prove (`worker:<id>`); None for any other caller: the
    gateway acts for HTTP workers, and a shared `worker` identity names no single process."""
    identity = _CALLER.get()
    if identity is None or role_of(identity) != WORKER:
        return None
    return instance_of(identity) or None


def worker_refusal(rpc: str, worker_id: str) -> str | None:
    """`NOT_THIS_WORKER` when the caller is one worker process and `worker_id` is another's (counted
    and logged here; the RPC refuses, and audits where it keeps an audit); None otherwise."""
    own = current_worker()
    if own is None or own == worker_id:
        return None
    REFUSALS.labels(rpc, NOT_THIS_WORKER).inc()
    log.warning("refused %s: worker %r asked as worker %r", rpc, own, worker_id)
    return NOT_THIS_WORKER


class ServerAuth:
    """Identifies callers per the process's `MeshAuth` and binds its ports accordingly."""

    def __init__(self, settings: MeshAuth) -> None:
        self.settings = settings
        self._tokens = TokenTable(settings.tokens_file) if settings.mode == TOKEN else None

    @classmethod
    def off(cls) -> ServerAuth:
        return cls(MeshAuth.off(""))

    @property
    def enabled(self) -> bool:
        return self.settings.mode != OFF

    def caller(self, context: grpc.aio.ServicerContext) -> str | None:
        """The identity proven by this call's token or certificate, else None."""
        if self._tokens is not None:
            token = bearer(context.invocation_metadata())
            return self._tokens.caller(token) if token is not None else None
        names = context.auth_context().get(_COMMON_NAME) or []
        return names[0].decode() if names else None

    def bind(self, server: grpc.aio.Server, listen: str) -> int:
        """Adds the serving port (TLS in mtls mode) and, in mtls mode, the plaintext health port.

        Returns the serving port, 0 when it cannot be bound.
        """
        if self.settings.mode != MTLS:
            port: int = server.add_insecure_port(listen)
            return port
        if self.settings.health_listen:
            # Only health answers here: every other call arrives without a certificate and is refused.
            server.add_insecure_port(self.settings.health_listen)
        port = server.add_secure_port(listen, server_credentials(self.settings))
        return port


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls from unknown callers and from callers the policy does not list."""

    def __init__(self, auth: ServerAuth, policy: Mapping[str, frozenset[str]] = POLICY) -> None:
        self._auth = auth
        self._policy = policy

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or is_open(method):
            return handler
        rule = Rule(method, self._policy)
        return _guard(handler, self._single(rule), self._streaming(rule))

    async def _admit(self, rule: Rule, request: Any, context: grpc.aio.ServicerContext) -> str:
        caller = self._auth.caller(context)
        if caller is None:
            REFUSALS.labels(rule.name, "unauthenticated").inc()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "mesh credentials missing or not recognised")
            raise AssertionError("unreachable: abort raises")
        if not rule.permits(role_of(caller), request):
            REFUSALS.labels(rule.name, "permission_denied").inc()
            log.warning("refused %s to caller %r (peer %s)", rule.describe(request), caller, context.peer())
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"caller {caller!r} may not call {rule.describe(request)}"
            )
        return caller

    def _single(self, rule: Rule) -> Callable[[Behavior], Behavior]:
        def wrap(behavior: Behavior) -> Behavior:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                unary = request if rule.inspects_request and not hasattr(request, "__aiter__") else None
                token = _CALLER.set(await self._admit(rule, unary, context))
                try:
                    return await behavior(request, context)
                finally:
                    _CALLER.reset(token)

            return run

        return wrap

    def _streaming(self, rule: Rule) -> Callable[[Behavior], Behavior]:
        def wrap(behavior: Behavior) -> Behavior:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                # No `current_caller()` here: no streaming servicer needs it, and a context variable
                # set inside an async generator would leak into whatever iterates it.
                await self._admit(rule, None, context)
                async for item in responses(behavior, request, context):
                    yield item

            return run

        return wrap


def _guard(
    handler: grpc.RpcMethodHandler,
    single: Callable[[Behavior], Behavior],
    streaming: Callable[[Behavior], Behavior],
) -> grpc.RpcMethodHandler:
    """Wraps every kind of handler, bidirectional streams included: nothing passes unchecked."""
    serializers = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(single(handler.unary_unary), *serializers)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(single(handler.stream_unary), *serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), *serializers)
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), *serializers)
