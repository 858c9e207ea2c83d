"""The `secrets` tool (dsl.md §9.9): `{name, provider}` → `{"value": ...}`, redacted in events.

Providers: `env` (the default) reads the worker's environment variable `name`; `credential`
reads a stored credential (or keychain alias) `name` through the secrets service and returns its
data, or only its `field` when one is given. Other providers are not supported by this worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from worker.credentials import SecretError
from worker.tools.base import ToolCall, ToolResult


class SecretsTool:
    async def run(self, call: ToolCall) -> ToolResult:
        name = call.config.get("name") or call.config.get("key")
        if not isinstance(name, str) or not name.strip():
            return ToolResult(ok=False, data=None, error="secrets tool needs 'name'")
        name = name.strip()
        provider = str(call.config.get("provider") or "env").lower()
        if provider == "env":
            value = os.environ.get(name)
            if value is None:
                return ToolResult(ok=False, data=None, error=f"Secret not found in environment: {name}")
            call.secrets.remember(value)
            return ToolResult(ok=True, data={"value": value})
        if provider == "credential":
            try:
                data = await call.secrets.credential(name)
            except SecretError as exc:
                return ToolResult(ok=False, data=None, error=str(exc))
            field = call.config.get("field")
            if isinstance(field, str) and field:
                if not isinstance(data, Mapping) or field not in data:
                    return ToolResult(
                        ok=False, data=None, error=f"credential '{name}' has no field '{field}'"
                    )
                call.secrets.remember(data[field])
                return ToolResult(ok=True, data={"value": data[field]})
            return ToolResult(ok=True, data={"value": data})
        return ToolResult(
            ok=False, data=None, error=f"secrets provider '{provider}' is not supported by this worker"
        )
