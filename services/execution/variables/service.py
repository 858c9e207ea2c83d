"""Execution-scoped variables (http-api.md §8) kept in noetl.transient on the execution's shard."""

from __future__ import annotations

from collections.abc import Sequence

from kernel.errors import InvalidArgument, NotFound
from services.execution.variables.store import VariableRow, VariableStore

VAR_TYPES = ("user_defined", "step_result", "computed", "iterator_state")


class Variables:
    def __init__(self, store: VariableStore) -> None:
        self._store = store

    async def set(
        self, execution_id: int, values: Sequence[tuple[str, bytes]], var_type: str, source_step: str | None
    ) -> list[str]:
        """Upserts (name, JSON) pairs; a repeated name keeps its last value, as in a JSON object.
        Returns the names set, in first-seen order.

        Raises:
            InvalidArgument: no variables, an unknown `var_type`, or a value that is not UTF-8.
        """
        if not values:
            raise InvalidArgument("Request body must contain 'variables' dict with at least one variable")
        if var_type not in VAR_TYPES:
            raise InvalidArgument(f"Invalid var_type '{var_type}'. Must be one of: {', '.join(VAR_TYPES)}")
        latest = {name: _json_text(name, value) for name, value in values}
        await self._store.upsert(execution_id, list(latest.items()), var_type, source_step)
        return list(latest)

    async def all(self, execution_id: int) -> list[VariableRow]:
        return await self._store.all(execution_id)

    async def read(self, execution_id: int, name: str) -> VariableRow:
        """Counts as an access.

        Raises:
            NotFound: the execution has no such variable.
        """
        row = await self._store.read(execution_id, name)
        if row is None:
            raise NotFound(f"Variable '{name}' not found for execution {execution_id}")
        return row

    async def delete(self, execution_id: int, name: str) -> bool:
        return await self._store.delete(execution_id, name)

    async def delete_all(self, execution_id: int) -> int:
        return await self._store.delete_all(execution_id)


def _json_text(name: str, raw: bytes) -> str:
    """Empty bytes are JSON null (common.proto); the database checks the JSON itself."""
    try:
        return raw.decode("utf-8") if raw else "null"
    except UnicodeDecodeError:
        raise InvalidArgument(f"value_json of variable '{name}' is not UTF-8") from None
