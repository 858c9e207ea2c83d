"""Each per-shard channel names its shard in `x-noetl-shard` (what Envoy routes on), on unary and
streaming calls alike, whatever the address: three channels to one server still say 0, 1 and 2."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from noetl.v1 import events_pb2, events_pb2_grpc, execution_pb2, execution_pb2_grpc

from kernel.grpc_client import SHARD_HEADER, ClientAuth, Sharded
from kernel.sharding import shard_for


async def test_every_call_of_a_shard_channel_carries_its_shard() -> None:
    seen: list[tuple[str, str]] = []

    def shard_of(context: grpc.aio.ServicerContext) -> str:
        metadata: dict[str, str] = dict(context.invocation_metadata() or ())
        return metadata.get(SHARD_HEADER, "")

    async def get(
        request: execution_pb2.GetRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.GetResponse:
        seen.append(("Get", shard_of(context)))
        return execution_pb2.GetResponse()

    async def subscribe(
        request: events_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.SubscribeResponse]:
        seen.append(("Subscribe", shard_of(context)))
        yield events_pb2.SubscribeResponse()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "noetl.v1.ExecutionService",
                {
                    "Get": grpc.unary_unary_rpc_method_handler(
                        get,
                        request_deserializer=execution_pb2.GetRequest.FromString,
                        response_serializer=execution_pb2.GetResponse.SerializeToString,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "noetl.v1.EventService",
                {
                    "Subscribe": grpc.unary_stream_rpc_method_handler(
                        subscribe,
                        request_deserializer=events_pb2.SubscribeRequest.FromString,
                        response_serializer=events_pb2.SubscribeResponse.SerializeToString,
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    address = f"127.0.0.1:{port}"
    executions = Sharded((address,) * 3, execution_pb2_grpc.ExecutionServiceStub, ClientAuth.off())
    events = Sharded((address,) * 3, events_pb2_grpc.EventServiceStub, ClientAuth.off())
    try:
        ids = [1001, 1002, 1003, 1004, 1005, 1006]
        for execution_id in ids:
            await executions.for_execution(execution_id).Get(
                execution_pb2.GetRequest(execution_id=execution_id)
            )
            async for _ in events.for_execution(execution_id).Subscribe(
                events_pb2.SubscribeRequest(execution_id=execution_id)
            ):
                pass
    finally:
        await executions.close()
        await events.close()
        await server.stop(None)
    expected = [str(shard_for(i, 3)) for i in ids]
    assert [shard for name, shard in seen if name == "Get"] == expected
    assert [shard for name, shard in seen if name == "Subscribe"] == expected
