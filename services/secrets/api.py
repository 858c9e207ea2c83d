"""SecretsService servicer: request → domain call → response, nothing else."""

from __future__ import annotations

import grpc
from noetl.v1 import secrets_pb2, secrets_pb2_grpc

from kernel import jsonutil
from kernel.errors import InvalidArgument
from kernel.mesh_guard import worker_refusal
from kernel.wire import json_field, optional, optional_time
from services.secrets.audit import Reader
from services.secrets.keychain import Keychain, KeychainInput, ReadStatus
from services.secrets.messages import (
    audit_message,
    credential_message,
    keychain_message,
    reader,
    table_message,
)
from services.secrets.rotation import RotateInput, Rotator
from services.secrets.service import CredentialInput, Credentials
from services.secrets.store import AuditQuery, SecretsStore

DEFAULT_BATCH_SIZE = 100
DEFAULT_MAX_BATCHES = 1000
DEFAULT_AUDIT_LIMIT = 100
MAX_AUDIT_LIMIT = 10000


class SecretsApi(secrets_pb2_grpc.SecretsServiceServicer):
    def __init__(
        self, credentials: Credentials, keychain: Keychain, rotator: Rotator, store: SecretsStore
    ) -> None:
        self._credentials = credentials
        self._keychain = keychain
        self._rotator = rotator
        self._store = store

    async def PutCredential(
        self, request: secrets_pb2.PutCredentialRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.PutCredentialResponse:
        row = await self._credentials.put(
            CredentialInput(
                name=request.name,
                type=request.type,
                data=json_field(request.data_json, "data"),
                meta=json_field(request.meta_json, "meta"),
                tags=list(request.tags.values) if request.HasField("tags") else None,
                description=optional(request, "description"),
            )
        )
        return secrets_pb2.PutCredentialResponse(credential=credential_message(row))

    async def ListCredentials(
        self, request: secrets_pb2.ListCredentialsRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.ListCredentialsResponse:
        rows = await self._credentials.list(type_=optional(request, "type"), q=optional(request, "q"))
        return secrets_pb2.ListCredentialsResponse(credentials=[credential_message(row) for row in rows])

    async def GetCredential(
        self, request: secrets_pb2.GetCredentialRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.GetCredentialResponse:
        found = await self._credentials.get(
            request.identifier, include_data=request.include_data, reader=reader(request.accessor)
        )
        return secrets_pb2.GetCredentialResponse(
            credential=credential_message(found.row, found.data), from_keychain=found.from_keychain
        )

    async def DeleteCredential(
        self, request: secrets_pb2.DeleteCredentialRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.DeleteCredentialResponse:
        row = await self._credentials.delete(request.identifier)
        return secrets_pb2.DeleteCredentialResponse(id=row.id, name=row.name)

    async def SetKeychain(
        self, request: secrets_pb2.SetKeychainRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.SetKeychainResponse:
        cached = await self._keychain.set(
            KeychainInput(
                catalog_id=request.catalog_id,
                name=request.keychain_name,
                data=json_field(request.data_json, "token_data"),
                credential_type=request.credential_type,
                cache_type=request.cache_type or "token",
                scope_type=request.scope_type or "global",
                execution_id=optional(request, "execution_id"),
                parent_execution_id=optional(request, "parent_execution_id"),
                ttl_seconds=optional(request, "ttl_seconds"),
                expires_at=optional_time(request, "expires_at"),
                auto_renew=request.auto_renew,
                renew_config=json_field(request.renew_config_json, "renew_config"),
            )
        )
        response = secrets_pb2.SetKeychainResponse(
            cache_key=cached.cache_key, ttl_seconds=cached.ttl_seconds, auto_renew=cached.auto_renew
        )
        response.expires_at.FromDatetime(cached.expires_at)
        return response

    async def GetKeychain(
        self, request: secrets_pb2.GetKeychainRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.GetKeychainResponse:
        read = await self._keychain.get(
            request.catalog_id,
            request.keychain_name,
            optional(request, "execution_id"),
            request.scope_type or "global",
            reader(request.accessor),
        )
        response = secrets_pb2.GetKeychainResponse(status=read.status.value, cache_key=read.cache_key)
        if read.row is not None:
            data = read.data if read.status is ReadStatus.SUCCESS else None
            response.entry.CopyFrom(keychain_message(read.row, data, read.ttl_seconds))
        return response

    async def DeleteKeychain(
        self, request: secrets_pb2.DeleteKeychainRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.DeleteKeychainResponse:
        deleted, key = await self._keychain.delete(
            request.catalog_id,
            request.keychain_name,
            optional(request, "execution_id"),
            request.scope_type or "global",
        )
        return secrets_pb2.DeleteKeychainResponse(deleted=deleted, cache_key=key)

    async def ListKeychain(
        self, request: secrets_pb2.ListKeychainRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.ListKeychainResponse:
        rows = await self._keychain.list(request.catalog_id)
        return secrets_pb2.ListKeychainResponse(entries=[keychain_message(row) for row in rows])

    async def Resolve(
        self, request: secrets_pb2.ResolveRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.ResolveResponse:
        if not request.alias or not request.execution_id:
            raise InvalidArgument("Resolve needs an alias and an execution_id")
        worker = Reader(
            worker_id=request.worker_id or None,
            caller="worker",
            parent_execution_id=optional(request, "parent_execution_id"),
        )
        found = await self._credentials.resolve(
            request.alias,
            request.execution_id,
            worker,
            refusal=worker_refusal("SecretsService/Resolve", request.worker_id),
        )
        return secrets_pb2.ResolveResponse(
            data_json=jsonutil.dumps(found.data),
            source="keychain" if found.from_keychain else "credential",
            type=found.row.type,
        )

    async def Rotate(
        self, request: secrets_pb2.RotateRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.RotateResponse:
        if request.batch_size < 0 or request.max_batches < 0:
            raise InvalidArgument("batch_size and max_batches must not be negative")
        credential, keychain = await self._rotator.rotate(
            RotateInput(
                batch_size=request.batch_size or DEFAULT_BATCH_SIZE,
                max_batches=request.max_batches or DEFAULT_MAX_BATCHES,
                credential_after=optional(request, "credential_after"),
                keychain_after=optional(request, "keychain_after"),
            )
        )
        return secrets_pb2.RotateResponse(
            credential=table_message(credential), keychain=table_message(keychain)
        )

    async def KeyStatus(
        self, request: secrets_pb2.KeyStatusRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.KeyStatusResponse:
        credential, keychain = await self._rotator.key_status()
        return secrets_pb2.KeyStatusResponse(credential=credential, keychain=keychain)

    async def ListAudit(
        self, request: secrets_pb2.ListAuditRequest, context: grpc.aio.ServicerContext
    ) -> secrets_pb2.ListAuditResponse:
        limit = request.limit or DEFAULT_AUDIT_LIMIT
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise InvalidArgument(f"limit must be in 1..{MAX_AUDIT_LIMIT}")
        rows = await self._store.list_audit(
            AuditQuery(
                credential=optional(request, "credential"),
                execution_id=optional(request, "execution_id"),
                since=optional_time(request, "from_time"),
                until=optional_time(request, "to_time"),
                limit=limit,
            )
        )
        return secrets_pb2.ListAuditResponse(rows=[audit_message(row) for row in rows])
