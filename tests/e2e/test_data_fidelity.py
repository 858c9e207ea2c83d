"""Step data reaches later steps unchanged; only resolved secrets are replaced (data-model.md §9.10).

Both directions on the session mesh: data that merely looks secret (a base64 blob, a sha256
digest, secret-sounding keys, 64-bit integers) is read back by the next step exactly, and a wallet
secret echoed by user code, in clear and in its common encodings, is found nowhere in the event
log, the result store or the worker's log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
import uuid

import httpx
import pytest

from tests.helpers.invariants import finish
from tests.helpers.mesh import (
    ProcessMesh,
    database,
    execute,
    execution_database,
    register,
    step_result,
    step_stdout,
)

pytestmark = pytest.mark.e2e

LOOK_ALIKE = {
    "blob": base64.b64encode(bytes(range(256)) * 2).decode(),
    "sha": hashlib.sha256(b"fidelity").hexdigest(),
    "token_count": 5,
    "password_policy": "min 12 chars",
    "nested": {"secret_santa": ["ann", "bob"]},
    "bearer": "Bearer is a word here",
    "big": 2**53 + 1,
    "max": 2**63 - 1,
    "min": -(2**63),
    "ratio": 0.1,
    "text": "Grüße, 世界 🎉",
}

FIDELITY = f"""\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: look_alike, path: tests/fidelity/look_alike}}
workflow:
  - step: start
    tool:
      kind: python
      code: |
        import json
        result = json.loads({json.dumps(json.dumps(LOOK_ALIKE))})
    next: [{{step: reader}}]
  - step: reader
    tool:
      kind: python
      input: {{seen: "{{{{ start.data }}}}"}}
      code: |
        result = {{"seen": seen}}
"""


async def test_data_that_looks_secret_reaches_the_next_step_and_the_api_unchanged(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    await register(gateway, FIDELITY)
    run = await finish(gateway, process_mesh.pg_dsn, await execute(gateway, "tests/fidelity/look_alike"))

    assert run.status == "COMPLETED", run.detail
    assert step_result(run.events, "start") == LOOK_ALIKE
    assert step_result(run.events, "reader") == {"seen": LOOK_ALIKE}


SECRET = 'pa ss"wö/rd+' + uuid.uuid4().hex[:12]
RAW = SECRET.encode()
ENCODED = {
    "base64": base64.b64encode(RAW).decode(),
    "base64url": base64.urlsafe_b64encode(RAW).decode().rstrip("="),
    "url": urllib.parse.quote(SECRET, safe=""),
    "form": urllib.parse.quote_plus(SECRET),
    "json": json.dumps(SECRET)[1:-1],
    "hex": RAW.hex(),
}

ENCODED_SECRET = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: encoded_secret, path: tests/fidelity/encoded_secret}
workflow:
  - step: start
    tool:
      kind: python
      input:
        value: "{{ keychain.fidelity_secret.password }}"
      code: |
        import base64, json, sys, urllib.parse
        raw = value.encode()
        forms = {
            "base64": base64.b64encode(raw).decode(),
            "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
            "url": urllib.parse.quote(value, safe=""),
            "form": urllib.parse.quote_plus(value),
            "json": json.dumps(value)[1:-1],
            "hex": raw.hex(),
        }
        print("in clear:", value, "as", *forms.values())
        print("to stderr:", forms["hex"], file=sys.stderr)
        # Past the inline budget, so the result goes through the result store.
        result = {"forms": forms, "clear": value, "padding": ["x" * 100] * 1500}
    next: [{step: fail}]
  - step: fail
    tool:
      kind: python
      input:
        value: "{{ keychain.fidelity_secret.password }}"
      code: |
        import base64
        raise ValueError("bad value " + base64.b64encode(value.encode()).decode())
"""


async def test_a_secret_and_its_encodings_are_stored_nowhere_in_clear(
    gateway: httpx.AsyncClient, process_mesh: ProcessMesh
) -> None:
    created = await gateway.post(
        "/api/credentials",
        json={"name": "fidelity_secret", "type": "generic", "data": {"password": SECRET}},
    )
    assert created.status_code in (200, 201), created.text
    await register(gateway, ENCODED_SECRET)
    execution_id = await execute(gateway, "tests/fidelity/encoded_secret")
    run = await finish(gateway, process_mesh.pg_dsn, execution_id, handled_failures=True)

    assert run.status == "FAILED"
    assert step_stdout(run.events, "start") is not None
    async with database(await execution_database(process_mesh.pg_dsn, execution_id)) as db:
        stored = await db.fetchval(
            "SELECT coalesce(string_agg(concat_ws(' ', context::text, result::text, meta::text, error),"
            " ' '), '') FROM noetl.event WHERE execution_id = $1",
            int(execution_id),
        )
        kept = await db.fetchval(
            "SELECT coalesce(string_agg(data::text, ' '), '') FROM noetl.result_store WHERE execution_id = $1",
            int(execution_id),
        )
    worker_log = (process_mesh.run_dir / "logs" / "worker.log").read_text(errors="replace")
    assert kept, "the large result should have gone through the result store"
    assert "[REDACTED]" in stored and "[REDACTED]" in kept
    for where, text in (("event log", stored), ("result store", kept), ("worker log", worker_log)):
        # Postgres shows JSON text with its own escapes; the secret's JSON form covers those.
        for name, form in {"clear": SECRET, **ENCODED}.items():
            assert form not in text, f"the secret's {name} form is in the {where}"
