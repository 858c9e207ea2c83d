"""Rebuilding a gRPC method handler around wrapped behaviours: the core of every server interceptor."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
Wrapper = Callable[[Behavior], Behavior]


def rewrap(
    handler: grpc.RpcMethodHandler, *, single: Wrapper, streaming: Wrapper | None = None
) -> grpc.RpcMethodHandler:
    """`single` wraps handlers that answer once (unary-unary and client-streaming), `streaming`
    the server-streaming ones; a kind without a wrapper, and bidirectional streams, stay as they are."""
    if handler is None:
        return handler
    serializers = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(single(handler.unary_unary), *serializers)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(single(handler.stream_unary), *serializers)
    if handler.unary_stream and streaming is not None:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), *serializers)
    return handler


async def responses(
    behavior: Behavior, request: Any, context: grpc.aio.ServicerContext
) -> AsyncIterator[Any]:
    """What a server-streaming `behavior` answers, whichever style it is written in: an async
    generator's items are passed on; a coroutine sends its own with `context.write` (grpc's health
    `Watch` does) and is only awaited, so stream wrappers serve both."""
    produced = behavior(request, context)
    if inspect.isawaitable(produced):
        await produced
        return
    async for item in produced:
        yield item
