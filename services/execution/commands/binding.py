"""Secrets bound to work: does a worker's live claim cover a credential? (`WorkBindingService`)

The secrets wallet asks before `Resolve` hands out data. A claim covers an alias when the worker
holds a live claim (CLAIMED or RUNNING, lease not expired) on a command of the execution whose
tool config or input names it: as a whole value (`auth: pg_prod`, a `secrets` tool's `name`)
or in a `keychain.<alias>` template the worker renders. The rendering context (workload,
earlier results) is not looked at: data a user passed in does not grant anything.

The live claims come from the commands sub-context's store (`CommandStore.live_claims`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from noetl.v1 import binding_pb2, binding_pb2_grpc

from kernel import jsonutil
from kernel.errors import InvalidArgument
from services.execution.commands.store import CommandStore

NO_LIVE_CLAIM = "no_live_claim"
NOT_REFERENCED = "not_referenced"
# The parts of a command context a tool reads its credentials from (engine/commands.py).
_TOOL_PARTS = ("tool_config", "input", "args")


@dataclass(frozen=True, slots=True)
class SecretUse:
    allowed: bool
    reason: str = ""
    command_id: int = 0


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def references(context: Mapping[str, Any], alias: str) -> bool:
    """Whether a command's tool config or input names `alias` (whole value or keychain template)."""
    template = re.compile(
        r"\bkeychain\s*(?:\.\s*" + re.escape(alias) + r"\b|\[\s*['\"]" + re.escape(alias) + r"['\"]\s*\])"
    )
    for part in _TOOL_PARTS:
        for text in _strings(context.get(part)):
            if text.strip() == alias or ("keychain" in text and template.search(text)):
                return True
    return False


class WorkBinding:
    def __init__(self, commands: CommandStore) -> None:
        self._commands = commands

    async def check(self, execution_id: int, worker_id: str, alias: str) -> SecretUse:
        """Raises InvalidArgument: no execution id or alias."""
        if not execution_id or not alias:
            raise InvalidArgument("CheckSecretUse needs an execution_id and an alias")
        if not worker_id:
            return SecretUse(False, NO_LIVE_CLAIM)
        rows = await self._commands.live_claims(execution_id, worker_id)
        if not rows:
            return SecretUse(False, NO_LIVE_CLAIM)
        for command_id, text in rows:
            context = jsonutil.loads(text) if text else {}
            if isinstance(context, Mapping) and references(context, alias):
                return SecretUse(True, command_id=command_id)
        return SecretUse(False, NOT_REFERENCED)


class WorkBindingApi(binding_pb2_grpc.WorkBindingServiceServicer):
    def __init__(self, binding: WorkBinding) -> None:
        self._binding = binding

    async def CheckSecretUse(
        self, request: binding_pb2.CheckSecretUseRequest, context: grpc.aio.ServicerContext
    ) -> binding_pb2.CheckSecretUseResponse:
        use = await self._binding.check(request.execution_id, request.worker_id, request.alias)
        return binding_pb2.CheckSecretUseResponse(
            allowed=use.allowed, reason=use.reason, command_id=use.command_id
        )
