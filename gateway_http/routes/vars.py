"""Variable routes → VarsService on the execution's shard (http-api.md §8).

`execution_id` is a number in every answer here (§1.4). The service answers the route's 400s
(no variables, unknown `var_type`) and its 404; the body's shape is checked here.
"""

from __future__ import annotations

import json
from typing import Any

from noetl.v1 import vars_pb2
from starlette.requests import Request
from starlette.responses import Response

from gateway_http.clients import ExecutionShard
from gateway_http.encoding import dumps, json_response
from gateway_http.formatting import timestamp
from gateway_http.openapi.build import (
    BACKEND,
    BODY,
    EXECUTION_ID,
    Operation,
    json_body,
    nullable,
    obj,
    ok,
    path_param,
    ref,
)
from gateway_http.openapi.schemas_services import VAR_TYPES
from gateway_http.routes import Endpoint, set_present
from gateway_http.routes.credentials import required_object
from gateway_http.validation import Problems, read_json
from kernel.grpc_client import Sharded
from kernel.wire import optional


class VarsRoutes:
    def __init__(self, execution: Sharded[ExecutionShard], rpc_timeout: float) -> None:
        self._execution = execution
        self._timeout = rpc_timeout

    def endpoints(self) -> list[Endpoint]:
        var_name = path_param("var_name", "Variable name", {"type": "string", "minLength": 1})
        return [
            Endpoint(
                "/vars/{execution_id}",
                self.list_all,
                ("GET",),
                Operation(
                    "vars_list",
                    "variables",
                    "Every variable of an execution",
                    ok("The variables", ref("VariableMap")),
                    ("422", "500", *BACKEND),
                    parameters=(EXECUTION_ID,),
                ),
            ),
            Endpoint(
                "/vars/{execution_id}",
                self.set,
                ("POST",),
                Operation(
                    "vars_set",
                    "variables",
                    "Set (upsert) variables",
                    ok("Set", ref("VariablesSet")),
                    (*BODY, "500", *BACKEND),
                    description=(
                        "An empty map: 400 `Request body must contain 'variables' dict with at least one"
                        " variable`; an unknown `var_type`: 400 `Invalid var_type '<t>'. Must be one of:"
                        " user_defined, step_result, computed, iterator_state`."
                    ),
                    parameters=(EXECUTION_ID,),
                    body=json_body(
                        obj(
                            {
                                "variables": {"type": "object"},
                                "var_type": {"type": "string", "enum": VAR_TYPES, "default": "user_defined"},
                                "source_step": nullable({"type": "string"}),
                            },
                            ["variables"],
                        )
                    ),
                ),
            ),
            Endpoint(
                "/vars/{execution_id}",
                self.delete_all,
                ("DELETE",),
                Operation(
                    "vars_clear",
                    "variables",
                    "Delete every variable of an execution",
                    ok(
                        "Deleted",
                        obj({"execution_id": ref("IdNumber"), "deleted_count": {"type": "integer"}}),
                    ),
                    ("422", "500", *BACKEND),
                    parameters=(EXECUTION_ID,),
                ),
            ),
            Endpoint(
                "/vars/{execution_id}/{var_name}",
                self.get,
                ("GET",),
                Operation(
                    "vars_get",
                    "variables",
                    "One variable (bumps `access_count`)",
                    ok("The variable", ref("Variable")),
                    ("404", "422", "500", *BACKEND),
                    parameters=(EXECUTION_ID, var_name),
                ),
            ),
            Endpoint(
                "/vars/{execution_id}/{var_name}",
                self.delete,
                ("DELETE",),
                Operation(
                    "vars_delete",
                    "variables",
                    "Delete one variable (`deleted: false` when absent)",
                    ok(
                        "Deleted or absent",
                        obj(
                            {
                                "execution_id": ref("IdNumber"),
                                "var_name": {"type": "string"},
                                "deleted": {"type": "boolean"},
                            }
                        ),
                    ),
                    ("422", "500", *BACKEND),
                    parameters=(EXECUTION_ID, var_name),
                ),
            ),
        ]

    async def list_all(self, request: Request) -> Response:
        """GET → `ListVariables`: every variable by name; reading them all is not an access."""
        execution_id = _execution_id(request)
        listed = await self._execution.for_execution(execution_id).vars.ListVariables(
            vars_pb2.ListVariablesRequest(execution_id=execution_id), timeout=self._timeout
        )
        return json_response(
            {
                "execution_id": execution_id,
                "variables": {item.name: _metadata(item) for item in listed.variables},
                "count": len(listed.variables),
            }
        )

    async def get(self, request: Request) -> Response:
        """GET one → `GetVariable`, which counts the read; the answer shows the count after it."""
        execution_id = _execution_id(request)
        name = request.path_params["var_name"]
        found = await self._execution.for_execution(execution_id).vars.GetVariable(
            vars_pb2.GetVariableRequest(execution_id=execution_id, name=name), timeout=self._timeout
        )
        return json_response({"execution_id": execution_id, "var_name": name, **_metadata(found.variable)})

    async def set(self, request: Request) -> Response:
        """POST → `SetVariables` (an upsert per name)."""
        problems = Problems()
        execution_id = problems.path_id(request, "execution_id")
        raw = await read_json(request)
        fields = problems.body(raw)
        variables = required_object(raw, "variables", problems)
        var_type = fields.text("var_type")  # absent or null: the default; "" is refused by the service
        source_step = fields.text("source_step")
        problems.check()
        message = vars_pb2.SetVariablesRequest(
            execution_id=execution_id,
            variables=[
                vars_pb2.VariableAssignment(name=name, value_json=dumps(value))
                for name, value in (variables or {}).items()
            ],
            var_type="user_defined" if var_type is None else var_type,
        )
        set_present(message, source_step=source_step)
        done = await self._execution.for_execution(execution_id).vars.SetVariables(
            message, timeout=self._timeout
        )
        return json_response(
            {
                "execution_id": execution_id,
                "variables_set": done.variables_set,
                "var_names": list(done.var_names),
            }
        )

    async def delete(self, request: Request) -> Response:
        """DELETE one → `DeleteVariable`; 200 with `deleted:false` when there was none."""
        execution_id = _execution_id(request)
        name = request.path_params["var_name"]
        done = await self._execution.for_execution(execution_id).vars.DeleteVariable(
            vars_pb2.DeleteVariableRequest(execution_id=execution_id, name=name), timeout=self._timeout
        )
        return json_response({"execution_id": execution_id, "var_name": name, "deleted": done.deleted})

    async def delete_all(self, request: Request) -> Response:
        """DELETE → `DeleteVariables`."""
        execution_id = _execution_id(request)
        done = await self._execution.for_execution(execution_id).vars.DeleteVariables(
            vars_pb2.DeleteVariablesRequest(execution_id=execution_id), timeout=self._timeout
        )
        return json_response({"execution_id": execution_id, "deleted_count": done.deleted_count})


def _execution_id(request: Request) -> int:
    """Raises RequestInvalid (422) for a non-numeric id."""
    problems = Problems()
    execution_id = problems.path_id(request, "execution_id")
    problems.check()
    return execution_id


def _metadata(item: vars_pb2.ExecutionVariable) -> dict[str, Any]:
    """The stored JSON is read with the standard parser, which keeps integers of any size."""
    return {
        "value": json.loads(item.value_json),
        "type": item.var_type,
        "source_step": optional(item, "source_step"),
        "created_at": timestamp(item.created_at),
        "accessed_at": timestamp(item.accessed_at),
        "access_count": item.access_count,
    }
