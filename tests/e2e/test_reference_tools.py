"""Tool forms of the reference's regression set, on the whole mesh (issue #13), with playbooks of
this suite: policy-rule error kinds (and the former `http` kind), `output.response` in a rule,
`credential:` as an alias of `auth:` on http and postgres, and a multi-statement postgres command
read per statement. docs/compatibility.md lists them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from noetl_mesh import procs
from tests.helpers.invariants import run_playbook
from tests.helpers.mesh import ProcessMesh, pg_credential, step_result
from tests.helpers.mock_api import MockApi, running_mock_api

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def mock_api() -> Iterator[tuple[str, MockApi]]:
    with running_mock_api() as served:
        yield served


ERROR_KINDS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: error_kinds, path: tests/forms/error_kinds}
workload: {api_url: "", targets: []}
workflow:
  - step: start
    loop: {in: "{{ targets }}", iterator: target}
    tool:
      - name: call
        kind: http
        url: "{{ target.url }}"
        timeout: "{{ target.timeout }}"
        spec:
          policy:
            rules:
              - when: "{{ output.status == 'error' }}"
                then:
                  do: continue
                  set:
                    kind: "{{ output.error.kind }}"
                    status: "{{ output.error.http_status }}"
                    retryable: "{{ output.error.retryable }}"
                    answered: "{{ output.response.status_code }}"
      - name: report
        kind: python
        input: {kind: "{{ kind }}", status: "{{ status }}", retryable: "{{ retryable }}", answered: "{{ answered }}"}
        code: "result = {'kind': kind, 'status': status, 'retryable': retryable, 'answered': answered}"
    next:
      - {step: legacy, when: '{{ event.name == "loop.done" }}'}
  - step: legacy
    tool:
      kind: http
      url: "{{ api_url }}/api/v1/status/502"
      spec:
        policy:
          rules:
            - when: "{{ output.error.kind == 'http' and output.error.code == 502 }}"
              then: {do: continue, set: {ctx.legacy_kind: "{{ output.error.kind }}"}}
    next: summary
  - step: summary
    tool:
      kind: python
      input: {reports: "{{ start }}", legacy_kind: "{{ legacy_kind }}", legacy_status: "{{ legacy.status_code }}"}
      code: |
        result = {'reports': [r['report'] for r in reports], 'legacy_kind': legacy_kind,
                  'legacy_status': legacy_status}
"""


async def test_policy_rules_see_error_kinds_like_the_reference(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, _ = mock_api
    codes = [429, 503, 401, 403, 404, 400]
    targets: list[dict[str, Any]] = [{"url": f"{url}/api/v1/status/{code}", "timeout": 5} for code in codes]
    targets.append({"url": f"{url}/api/v1/concurrency/probe?delay_seconds=3", "timeout": 0.5})
    targets.append({"url": f"http://127.0.0.1:{procs.free_ports(1)[0]}/nothing", "timeout": 5})
    run = await run_playbook(
        gateway, process_mesh.pg_dsn, ERROR_KINDS, {"api_url": url, "targets": targets}, seconds=60.0
    )

    assert run.status == "COMPLETED", run.detail

    def answered(kind: str, code: int, retryable: bool) -> dict[str, Any]:
        return {"kind": kind, "status": code, "retryable": retryable, "answered": code}

    unanswered = {"status": None, "retryable": True, "answered": None}
    assert step_result(run.events, "summary") == {
        "reports": [
            answered("rate_limit", 429, True),
            answered("server_error", 503, True),
            answered("auth", 401, False),
            answered("auth", 403, False),
            answered("not_found", 404, False),
            answered("client_error", 400, False),
            {"kind": "timeout", **unanswered},
            {"kind": "connection", **unanswered},
        ],
        # A rule naming the former kind `http` still matches; `then.set` sees the reference's.
        "legacy_kind": "server_error",
        "legacy_status": 502,
    }


CREDENTIAL_ALIAS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: credential_alias, path: tests/forms/credential_alias}
workload: {api_url: "", table: ""}
workflow:
  - step: start
    tool:
      kind: http
      url: "{{ api_url }}/api/v1/echo"
      credential: forms_api
    next: multi
  - step: multi
    tool:
      kind: postgres
      credential: forms_pg
      command: |
        CREATE TEMP TABLE {{ table }} (id int, name text);
        INSERT INTO {{ table }} VALUES (1, 'one'), (2, 'two'), (3, 'three');
        SELECT count(*)::int AS n FROM {{ table }};
        UPDATE {{ table }} SET name = upper(name) WHERE id > 1;
        SELECT id, name FROM {{ table }} ORDER BY id
    next: read
  - step: read
    tool:
      kind: python
      input:
        inserted: "{{ multi.command_1.affected_rows }}"
        counted: "{{ multi.command_2.rows[0].n }}"
        updated: "{{ multi.command_3.affected_rows }}"
        last: "{{ multi.rows }}"
        statements: "{{ multi.statement_count }}"
      code: |
        result = {'inserted': inserted, 'counted': counted, 'updated': updated, 'last': last,
                  'statements': statements}
"""


async def test_credential_is_an_alias_of_auth_and_statements_read_one_by_one(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh, mock_api: tuple[str, MockApi]
) -> None:
    url, _ = mock_api
    for body in (
        pg_credential("forms_pg", process_mesh.pg_dsn),
        {"name": "forms_api", "type": "generic", "data": {"token": f"t-{uuid.uuid4().hex}"}},
    ):
        response = await gateway.post("/api/credentials", json=body)
        assert response.status_code in (200, 201), response.text
    table = f"forms_{uuid.uuid4().hex[:12]}"
    run = await run_playbook(
        gateway, process_mesh.pg_dsn, CREDENTIAL_ALIAS, {"api_url": url, "table": table}, seconds=60.0
    )

    assert run.status == "COMPLETED", run.detail
    # The credential's token went out as the authorization header (redacted in the events).
    sent = step_result(run.events, "start")["data"]["headers"]
    assert "authorization" in sent and "[REDACTED]" in sent["authorization"]
    multi = step_result(run.events, "multi")
    assert multi["command_0"] == {"affected_rows": 0}
    assert multi["command_4"] == {"columns": ["id", "name"], "rows": multi["rows"], "row_count": 3}
    assert step_result(run.events, "read") == {
        "inserted": 3,
        "counted": 3,
        "updated": 2,
        "last": [{"id": 1, "name": "one"}, {"id": 2, "name": "TWO"}, {"id": 3, "name": "THREE"}],
        "statements": 5,
    }
