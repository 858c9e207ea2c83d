"""Schemathesis against the running gateway: no 5xx, and every answer as the OpenAPI document says.

The document is loaded the way a client would, from the gateway's own `GET /openapi.json`. Each
operation gets a bounded number of generated requests (`EXAMPLES` valid ones and `EXAMPLES`
invalid ones, derandomized: the same code sends the same requests), and each answer is checked
for: not a server error, a status code the operation documents, the documented content type, and
a body matching its schema. A failure reports the first failing request as found (no shrinking).

- Operations the gateway does not serve yet are skipped here (`test_openapi.py` names them).
- Ids are random, so most calls answer 404/422; execution and command reads are also fuzzed with
  the ids of a real finished run, where their 200 bodies are checked too.
- Internal routes are fuzzed three ways: on the session gateway, which has no token configured
  (the gate's 503, so only conformance is checked); and on a second gateway with a token, with
  that token (the handlers run) and without it (403).
- `POST /api/executions/cleanup` always runs as a dry run: a real cleanup would cancel other
  tests' parked executions.
- Not fuzzed: the SSE stream (`/events/stream`), which answers a stream, not a document (only its
  content type is checked). Inputs past the documented limits (size, nesting, YAML bombs) are the
  abuse suite's (`tests/abuse/`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from gateway_http.openapi.document import DOCS_FILE
from tests.helpers.invariants import FinishedRun, finish
from tests.helpers.mesh import ProcessMesh, execute, register
from tests.helpers.playbooks import noop_chain
from tests.helpers.side_gateway import side_gateway

pytestmark = pytest.mark.e2e

EXAMPLES = 12
GATE_EXAMPLES = 4
TOKEN = "fuzz-internal-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STREAM = "/api/executions/{execution_id}/events/stream"
CLEANUP = ("/api/executions/cleanup", "POST")
# Operations whose contract answers 500 for some input: only conformance is checked on them.
SERVER_ERROR_BY_CONTRACT = {
    # http-api.md §12.5: a batch the database refuses (e.g. a `result` of the wrong shape) is
    # 500 `events/project failed: <e>`.
    ("/api/internal/events/project", "POST"),
}
CONFORMANCE = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
CHECKS = [checks.not_a_server_error, *CONFORMANCE]
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
# Token-gated outside /api/internal/ (http-api.md §1.8).
GATED_CATALOG = ("/api/catalog/delete", "/api/catalog/restore")

FUZZ_PATH = "fuzz/noop"
FUZZ_PLAYBOOK = noop_chain(FUZZ_PATH, ("start", "end"))


def _documented() -> list[tuple[str, str]]:
    """(path, METHOD) of every operation of docs/openapi.json, read at collection time
    (`tests/contract/test_openapi.py` keeps the file equal to what the gateway serves)."""
    paths = json.loads(DOCS_FILE.read_text(encoding="utf-8"))["paths"]
    return [
        (path, method.upper()) for path, item in paths.items() for method in item if method in HTTP_METHODS
    ]


OPERATIONS = [operation for operation in _documented() if operation[0] != STREAM]


PUBLIC = [op for op in OPERATIONS if not op[0].startswith("/api/internal/") and op[0] not in GATED_CATALOG]
GATED = [op for op in OPERATIONS if op not in PUBLIC]


@dataclass(frozen=True)
class Target:
    """The loaded document, the session gateway, what it serves, and one HTTP session for all calls."""

    api: Any
    base_url: str
    served: frozenset[tuple[str, str]]
    session: requests.Session

    def operation(self, path: str, method: str) -> Any:
        """The schemathesis operation; a documented operation the gateway does not serve fails."""
        assert (path, method) in self.served, f"{method} {path} is documented but not served"
        return self.api[path][method]


@pytest.fixture(scope="module")
def target(process_mesh: ProcessMesh) -> Iterator[Target]:
    base_url = process_mesh.gateway_url
    # What the gateway serves, from its runtime contract (`"METHOD /path"` by group).
    contract = httpx.get(f"{base_url}/api/runtime/contract", timeout=30.0).json()
    served = frozenset(
        (entry.partition(" ")[2], entry.partition(" ")[0])
        for entries in contract["routes"].values()
        for entry in entries
    )
    api = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    with requests.Session() as session:
        yield Target(api, base_url, served, session)


@pytest.fixture(scope="module")
async def token_gateway(
    process_mesh: ProcessMesh, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    log = tmp_path_factory.mktemp("fuzz") / "gateway.log"
    async with side_gateway(process_mesh, log, {"NOETL_INTERNAL_API_TOKEN": TOKEN}) as url:
        yield url


@pytest.fixture(scope="module")
async def finished_run(process_mesh: ProcessMesh) -> FinishedRun:
    async with httpx.AsyncClient(base_url=process_mesh.gateway_url, timeout=30.0) as http:
        await register(http, FUZZ_PLAYBOOK)
        return await finish(http, process_mesh.pg_dsn, await execute(http, FUZZ_PATH))


def fuzz(
    operation: Any,
    base_url: str,
    session: requests.Session,
    *,
    examples: int,
    headers: dict[str, str] | None = None,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    checked: list[Any] = CHECKS,
    **fixed: Any,
) -> list[str]:
    """Runs `examples` generated requests per mode; returns one report per mode that failed."""
    failures: list[str] = []
    for mode in modes:

        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            # No shrinking: the first failing example is reported as found, which bounds the time.
            phases=[Phase.explicit, Phase.generate],
            report_multiple_bugs=False,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
            ],
        )
        def run(case: Any) -> None:
            if (case.path, case.method.upper()) == CLEANUP and isinstance(case.body, dict):
                case.body["dry_run"] = True
            case.call_and_validate(base_url=base_url, session=session, headers=headers, checks=checked)

        try:
            run()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid request to generate.
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"--- {operation.method.upper()} {operation.path} ({mode.value}) ---\n{failure}")
    return failures


@pytest.mark.parametrize(("path", "method"), PUBLIC, ids=[f"{m} {p}" for p, m in PUBLIC])
def test_public_operation(target: Target, path: str, method: str) -> None:
    failures = fuzz(target.operation(path, method), target.base_url, target.session, examples=EXAMPLES)
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize(("path", "method"), GATED, ids=[f"{m} {p}" for p, m in GATED])
def test_internal_operation(target: Target, token_gateway: str, path: str, method: str) -> None:
    operation = target.operation(path, method)
    session = target.session
    handler_checks = CONFORMANCE if (path, method) in SERVER_ERROR_BY_CONTRACT else CHECKS
    failures = [
        # No token configured: the gate's documented 503 whatever the caller sends.
        *fuzz(operation, target.base_url, session, examples=GATE_EXAMPLES, headers=AUTH, checked=CONFORMANCE),
        # A token configured and sent: the handler runs.
        *fuzz(operation, token_gateway, session, examples=EXAMPLES, headers=AUTH, checked=handler_checks),
        # A token configured, none sent: 403.
        *fuzz(operation, token_gateway, session, examples=GATE_EXAMPLES, modes=(GenerationMode.POSITIVE,)),
    ]
    assert not failures, "\n\n".join(failures)


REAL_ID_OPERATIONS = [
    (path, method)
    for path, method in OPERATIONS
    if method == "GET"
    and ("{execution_id}" in path or "{event_id}" in path)
    and not path.startswith("/api/vars/")
]


@pytest.mark.parametrize(
    ("path", "method"), REAL_ID_OPERATIONS, ids=[f"{m} {p}" for p, m in REAL_ID_OPERATIONS]
)
def test_reads_of_a_real_run(target: Target, finished_run: FinishedRun, path: str, method: str) -> None:
    """The same checks with the ids of a finished run, so the 200 bodies are checked too."""
    operation = target.operation(path, method)
    issued = next(e for e in finished_run.events if e["event_type"] == "command.issued")
    ids = {"execution_id": finished_run.execution_id, "event_id": str(issued["event_id"])}
    wanted = {name: value for name, value in ids.items() if "{" + name + "}" in path}
    failures = fuzz(
        operation,
        target.base_url,
        target.session,
        examples=EXAMPLES,
        modes=(GenerationMode.POSITIVE,),
        path_parameters=wanted,
    )
    assert not failures, "\n\n".join(failures)


async def test_the_event_stream_is_server_sent_events(
    gateway: httpx.AsyncClient, finished_run: FinishedRun
) -> None:
    """Excluded from fuzzing (see the module docstring): a finished run's stream replays and closes."""
    async with gateway.stream(
        "GET", f"/api/executions/{finished_run.execution_id}/events/stream"
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert b"event: playbook.completed" in body
    missing = await gateway.get("/api/executions/1/events/stream")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"


def test_every_documented_operation_is_fuzzed_or_excluded_on_purpose() -> None:
    assert set(_documented()) - set(OPERATIONS) == {(STREAM, "GET")}
