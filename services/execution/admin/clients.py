"""The execution context's handle on the secrets service: credentials for `/api/postgres/execute`."""

from __future__ import annotations

from typing import Any

from noetl.v1 import secrets_pb2, secrets_pb2_grpc

from kernel import jsonutil

# The secrets service's audit trail names this surface as the reader (data-model.md §9.7).
CALLER = "postgres-execute"
TIMEOUT_SECONDS = 30.0


class SecretsCredentials:
    def __init__(self, stub: secrets_pb2_grpc.SecretsServiceStub) -> None:
        self._stub = stub

    async def data(self, name: str) -> Any:
        """Raises NotFound: no credential has that name."""
        request = secrets_pb2.GetCredentialRequest(
            identifier=name, include_data=True, accessor=secrets_pb2.Accessor(caller=CALLER)
        )
        answer = await self._stub.GetCredential(request, timeout=TIMEOUT_SECONDS)
        return jsonutil.loads(answer.credential.data_json)
