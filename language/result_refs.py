"""Result-store references: `noetl://execution/<execution_id>/result/<name>/<result_id>` (data-model.md §3.8).

A reference carries its execution id, so anyone holding one (gateway, worker, orchestrator) can
route it to the shard that stores the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kernel.errors import InvalidArgument

_FORM = "noetl://execution/<execution_id>/result/<name>/<result_id>"
# The name may itself contain `/`: the result id is the last segment.
_REF = re.compile(r"noetl://execution/(\d{1,19})/result/(.+)/(\d{1,19})")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ResultRef:
    execution_id: int
    name: str
    result_id: int

    @property
    def uri(self) -> str:
        return f"noetl://execution/{self.execution_id}/result/{self.name}/{self.result_id}"


def parse_ref(text: str) -> ResultRef:
    """Raises InvalidArgument naming `ref` when `text` is not a result reference."""
    match = _REF.fullmatch(text.strip())
    if match is not None:
        execution_id, result_id = int(match.group(1)), int(match.group(3))
        if execution_id <= _INT64_MAX and result_id <= _INT64_MAX:
            return ResultRef(execution_id=execution_id, name=match.group(2), result_id=result_id)
    raise InvalidArgument(f"Invalid ref: {text!r}. Expected {_FORM}")


def result_reference(payload: Any) -> Mapping[str, Any] | None:
    """The `reference` of a worker event payload whose result was kept in the result store
    (`payload.result.reference`, dsl.md §9.12); None for an inline result."""
    result = payload.get("result") if isinstance(payload, Mapping) else None
    reference = result.get("reference") if isinstance(result, Mapping) else None
    if isinstance(reference, Mapping) and isinstance(reference.get("ref"), str):
        return reference
    return None
