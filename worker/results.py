"""Results over the inline budget go to the result store; events carry a reference (dsl.md §9.12).

The reference is `{ref, store, scope, bytes, sha256, preview}` (`sha256` as `sha256:<hex>`); the
execution service reads the value back before the engine sees the step's result, so templates read
it as if it were inline.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any

from noetl.v1 import results_pb2, results_pb2_grpc

from kernel import jsonutil
from kernel.errors import MeshError
from kernel.grpc_client import Sharded
from language.result_refs import parse_ref
from worker.tools.base import ToolCall

log = logging.getLogger(__name__)

CALL_TIMEOUT_SECONDS = 60.0
# The preview keeps this much of each level, like the truncated values of `/status` (http-api.md §4.5).
PREVIEW_ITEMS = 5
PREVIEW_DEPTH = 3
PREVIEW_TEXT = 200


class ResultOffload:
    def __init__(self, results: Sharded[results_pb2_grpc.ResultServiceStub], inline_bytes: int) -> None:
        self._results = results
        self._inline_bytes = inline_bytes

    async def reference(self, call: ToolCall, data: Any) -> dict[str, Any] | None:
        """Stores `data` when its compact JSON exceeds the inline budget and returns the reference;
        None keeps it inline.

        A store that cannot be reached keeps the result inline too: it is within the hard limit
        (`NOETL_WORKER_MAX_RESULT_BYTES`), so the step still succeeds, only with a larger event.
        """
        if data is None:
            return None
        encoded = jsonutil.dumps(data)
        if len(encoded) <= self._inline_bytes:
            return None
        # Secrets this command resolved never reach the store.
        visible = call.secrets.redact(data)
        if call.secrets.active:
            encoded = jsonutil.dumps(visible)
        try:
            stored = await self._results.for_execution(call.execution_id).Put(
                results_pb2.ResultServicePutRequest(
                    execution_id=call.execution_id,
                    name=call.step,
                    data_json=encoded,
                    source_step=call.step,
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except MeshError as exc:
            log.warning(
                "result of command %s (%d bytes) not stored, sent inline: %s",
                call.command_id,
                len(encoded),
                exc.detail,
            )
            return None
        return {
            "ref": stored.ref,
            "store": stored.store,
            "scope": stored.scope,
            "bytes": stored.bytes,
            # Prefixed so that the display filter's pattern rules leave it visible (data-model.md §9.10).
            "sha256": f"sha256:{stored.sha256}",
            "preview": preview(visible),
        }

    async def read(self, ref: str) -> Any:
        """The value `ref` names, for a client that needs the data itself (a parent step
        returning its child's externalised result).

        Raises:
            MeshError: the reference is malformed, unknown or expired, or the store is unreachable.
        """
        target = parse_ref(ref)
        found = await self._results.for_execution(target.execution_id).Resolve(
            results_pb2.ResultServiceResolveRequest(ref=ref), timeout=CALL_TIMEOUT_SECONDS
        )
        return jsonutil.loads(found.data_json) if found.data_json else None


def preview(value: Any, depth: int = 0) -> Any:
    """A small look at a value: the first few keys or items of each level, three levels deep,
    strings cut short; what lies deeper is `"..."`."""
    if isinstance(value, Mapping):
        if depth >= PREVIEW_DEPTH:
            return "..."
        return {key: preview(item, depth + 1) for key, item in itertools.islice(value.items(), PREVIEW_ITEMS)}
    if isinstance(value, list):
        if depth >= PREVIEW_DEPTH:
            return "..."
        return [preview(item, depth + 1) for item in value[:PREVIEW_ITEMS]]
    if isinstance(value, str) and len(value) > PREVIEW_TEXT:
        return value[:PREVIEW_TEXT] + "..."
    return value
