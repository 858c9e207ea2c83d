"""ResultService: values kept outside the event log."""

from __future__ import annotations

import grpc
from noetl.v1 import results_pb2, results_pb2_grpc

from kernel.wire import json_field, optional, timestamp
from language.result_refs import parse_ref
from services.execution.messages import json_object
from services.execution.results.service import PutInput, Results


class ResultApi(results_pb2_grpc.ResultServiceServicer):
    def __init__(self, results: Results) -> None:
        self._results = results

    async def Put(
        self, request: results_pb2.ResultServicePutRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ResultServicePutResponse:
        data = json_field(request.data_json, "data_json")
        stored = await self._results.put(
            PutInput(
                execution_id=request.execution_id,
                name=request.name,
                data=data,
                scope=optional(request, "scope"),
                store=optional(request, "store"),
                ttl=optional(request, "ttl"),
                source_step=optional(request, "source_step"),
                correlation=json_object(request.correlation_json, "correlation_json"),
                extracted=json_object(request.extracted_json, "extracted_json"),
                compress=request.compress,
            )
        )
        message = results_pb2.ResultServicePutResponse(
            ref=stored.ref.uri,
            store=stored.store,
            scope=stored.scope,
            bytes=stored.size,
            sha256=stored.sha256,
            result_id=stored.ref.result_id,
        )
        if stored.expires_at is not None:
            message.expires_at.CopyFrom(timestamp(stored.expires_at))
        return message

    async def Resolve(
        self, request: results_pb2.ResultServiceResolveRequest, context: grpc.aio.ServicerContext
    ) -> results_pb2.ResultServiceResolveResponse:
        data = await self._results.resolve(parse_ref(request.ref))
        return results_pb2.ResultServiceResolveResponse(data_json=data.encode())
