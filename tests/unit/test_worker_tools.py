"""The worker's tools one by one: http (against the mock API), shell, duckdb, SQL helpers, secrets."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from language.sql import json_safe, split_statements
from tests.helpers.mock_api import MockApi, running_mock_api
from worker.credentials import REDACTED, CommandSecrets, SecretError
from worker.executor import _bounded
from worker.keychain import aliases, resolve_keychain
from worker.pipeline import ToolRunner
from worker.policy import attempt_output
from worker.tools.base import ToolCall, ToolResult
from worker.tools.duckdb_sql import DuckDbTool
from worker.tools.http import HttpTool
from worker.tools.secrets_tool import SecretsTool
from worker.tools.shell import ShellTool
from worker.tools.sql_common import returns_rows


@pytest.fixture(scope="module")
def mock_api() -> Iterator[tuple[str, MockApi]]:
    with running_mock_api() as served:
        yield served


class FakeWallet:
    """A `SecretsClient` stand-in: aliases → data, counting reads."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.reads: list[str] = []

    async def resolve(self, alias: str, execution_id: int) -> Any:
        self.reads.append(alias)
        if alias not in self.data:
            raise SecretError(f"credential '{alias}' not found in the secrets wallet")
        return self.data[alias]


def call(kind: str, config: dict[str, Any], *, timeout: float | None = 10.0, **extra: Any) -> ToolCall:
    return ToolCall(
        execution_id=1,
        command_id=2,
        step="s",
        kind=kind,
        config=config,
        input=extra.pop("input", {}),
        render_context=extra.pop("render_context", {}),
        timeout=timeout,
        server_url="",
        **extra,
    )


def secrets(data: dict[str, Any]) -> CommandSecrets:
    return CommandSecrets(FakeWallet(data), 1)  # type: ignore[arg-type]


# --- http -------------------------------------------------------------------------------------


async def test_http_result_carries_the_body_under_data_and_body(mock_api: tuple[str, MockApi]) -> None:
    url, _ = mock_api
    tool = HttpTool()
    try:
        result = await tool.run(
            call("http", {"url": f"{url}/api/v1/users", "params": {"offset": 30, "limit": 10}})
        )
    finally:
        await tool.close()
    assert result.ok
    assert result.data["status_code"] == 200
    assert result.data["data"] is result.data["body"]
    assert [u["id"] for u in result.data["body"]["users"]] == [31, 32, 33, 34, 35]
    assert result.data["headers"]["content-type"] == "application/json"


async def test_http_sends_numbers_as_decimal_text_and_json_bodies(mock_api: tuple[str, MockApi]) -> None:
    url, _ = mock_api
    tool = HttpTool()
    try:
        get = await tool.run(
            call("http", {"url": f"{url}/api/v1/echo", "params": {"d": 4.0, "n": 0, "b": True}})
        )
        post = await tool.run(
            call("http", {"url": f"{url}/api/v1/echo", "method": "post", "payload": {"k": [1, 2]}})
        )
        form = await tool.run(call("http", {"url": f"{url}/api/v1/echo", "method": "PUT", "form": {"a": 1}}))
    finally:
        await tool.close()
    assert get.data["body"]["query"] == {"d": "4.0", "n": "0", "b": "true"}
    assert (post.data["body"]["method"], post.data["body"]["body"]) == ("POST", {"k": [1, 2]})
    assert form.data["body"]["body"] == "a=1"


async def test_http_keeps_the_query_of_its_url_beside_params(mock_api: tuple[str, MockApi]) -> None:
    url, _ = mock_api
    tool = HttpTool()
    try:
        alone = await tool.run(call("http", {"url": f"{url}/api/v1/echo?a=1&b=2"}))
        both = await tool.run(call("http", {"url": f"{url}/api/v1/echo?a=1&b=2", "params": {"b": 3, "c": 4}}))
    finally:
        await tool.close()
    assert alone.data["body"]["query"] == {"a": "1", "b": "2"}
    assert both.data["body"]["query"] == {"a": "1", "b": "3", "c": "4"}


async def test_http_error_status_is_a_tool_error_that_keeps_its_data(mock_api: tuple[str, MockApi]) -> None:
    url, _ = mock_api
    tool = HttpTool()
    try:
        result = await tool.run(call("http", {"url": f"{url}/api/v1/status/429"}))
        missing = await tool.run(call("http", {"url": f"{url}/api/v1/nope"}))
    finally:
        await tool.close()
    assert not result.ok and result.error is not None and result.error.startswith("HTTP 429")
    assert result.data["data"] == {"status_code": 429}
    output = attempt_output("http", result)
    assert output["http"]["status"] == 429
    assert output["error"]["kind"] == "rate_limit" and output["error"]["retryable"] is True
    assert attempt_output("http", missing)["error"]["retryable"] is False


async def test_http_connection_failures_and_timeouts_are_retryable(mock_api: tuple[str, MockApi]) -> None:
    url, _ = mock_api
    tool = HttpTool()
    try:
        refused = await tool.run(call("http", {"url": "http://127.0.0.1:9/"}))
        slow = await tool.run(
            call(
                "http",
                {"url": f"{url}/api/v1/concurrency/probe", "params": {"delay_seconds": 2}, "timeout": 0.2},
            )
        )
    finally:
        await tool.close()
    assert refused.error_kind == "connection" and refused.error is not None
    assert refused.error.startswith("connection error")
    assert attempt_output("http", refused)["error"]["retryable"] is True
    assert slow.error_kind == "timeout"
    assert attempt_output("http", slow)["error"] == {
        "kind": "timeout",
        "retryable": True,
        "code": "timeout",
        "message": slow.error,
    }


async def test_http_auth_credential_becomes_a_header_and_is_redacted(mock_api: tuple[str, MockApi]) -> None:
    url, _ = mock_api
    token = "tok-" + uuid.uuid4().hex
    wallet = secrets({"api": {"token": token}})
    tool = HttpTool()
    try:
        result = await tool.run(call("http", {"url": f"{url}/api/v1/echo", "auth": "api"}, secrets=wallet))
    finally:
        await tool.close()
    assert result.data["body"]["headers"]["authorization"] == f"Bearer {token}"
    assert wallet.redact(result.data)["body"]["headers"]["authorization"] == f"Bearer {REDACTED}"


# --- shell ------------------------------------------------------------------------------------


async def test_shell_captures_output_and_exit_code(tmp_path: Any) -> None:
    ok = await ShellTool().run(
        call("shell", {"cmds": ["echo one", "echo two >&2", "pwd"], "cwd": str(tmp_path)})
    )
    assert ok.ok and ok.data == {"stdout": f"one\n{tmp_path}\n", "stderr": "two\n", "exit_code": 0}
    bad = await ShellTool().run(call("shell", {"command": "echo $X; exit 4", "env": {"X": 12}}))
    assert not bad.ok and bad.data["exit_code"] == 4
    assert bad.error == "shell command exited with code 4: 12"


async def test_shell_timeout_kills_the_command_and_its_children() -> None:
    started = asyncio.get_running_loop().time()
    result = await ShellTool().run(
        call("shell", {"command": "echo begun; sleep 30 & sleep 30", "timeout_seconds": 0.5})
    )
    assert asyncio.get_running_loop().time() - started < 5
    assert result.error_kind == "timeout" and result.error == "timeout: shell command exceeded 0.5s"
    assert result.data["stdout"] == "begun\n"


# --- duckdb and SQL helpers -------------------------------------------------------------------


async def test_duckdb_multi_statement_returns_the_last_statements_rows() -> None:
    sql = (
        "CREATE TABLE users (id INTEGER, name VARCHAR, age INTEGER);\n"
        "INSERT INTO users VALUES (1, 'Alice', 30), (2, 'Bob', 25), (3, 'Charlie', 35);\n"
        "SELECT name, age, DATE '2025-01-02' AS d, 2.50::DECIMAL(5,2) AS x FROM users WHERE age >= 30 ORDER BY age;"
    )
    result = await DuckDbTool().run(call("duckdb", {"query": sql}))
    assert result.ok, result.error
    assert result.data == {
        "columns": ["name", "age", "d", "x"],
        "rows": [
            {"name": "Alice", "age": 30, "d": "2025-01-02", "x": 2.5},
            {"name": "Charlie", "age": 35, "d": "2025-01-02", "x": 2.5},
        ],
        "row_count": 2,
    }
    inserted = await DuckDbTool().run(
        call("duckdb", {"commands": ["CREATE TABLE t (x INT)", "INSERT INTO t VALUES (1), (2)"]})
    )
    assert inserted.data == {"affected_rows": 2}


async def test_duckdb_file_database_errors_and_timeout(tmp_path: Any) -> None:
    database = str(tmp_path / "t.duckdb")
    await DuckDbTool().run(
        call("duckdb", {"database": database, "command": "CREATE TABLE t AS SELECT 42 AS x"})
    )
    again = await DuckDbTool().run(call("duckdb", {"database": database, "query": "SELECT x FROM t"}))
    assert again.data["rows"] == [{"x": 42}]
    bad = await DuckDbTool().run(call("duckdb", {"query": "SELEC 1"}))
    assert not bad.ok and bad.error is not None and bad.error.startswith("ParserException")
    slow = await DuckDbTool().run(
        call("duckdb", {"query": "SELECT count(*) FROM range(100000000000)"}, timeout=0.3)
    )
    assert slow.error_kind == "timeout"


def test_statements_split_outside_quotes_dollar_quotes_and_comments() -> None:
    sql = (
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        "INSERT INTO t VALUES ('a;b', \"c;d\", $$e;f$$); -- tail; comment\n"
        "/* block; /* nested; */ */ SELECT $1;\n ; \n"
    )
    assert split_statements(sql) == [
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
        "INSERT INTO t VALUES ('a;b', \"c;d\", $$e;f$$)",
        "-- tail; comment\n/* block; /* nested; */ */ SELECT $1",
    ]
    assert returns_rows("-- x\n WITH a AS (SELECT 1) SELECT * FROM a")
    assert not returns_rows("INSERT INTO t SELECT 1")


def test_database_values_become_json() -> None:
    assert json_safe(
        {
            "n": decimal.Decimal("16.2"),
            "i": decimal.Decimal("7"),
            "t": datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
            "u": uuid.UUID(int=1),
            "b": b"\x00\x01",
            "l": (1, decimal.Decimal("0.5")),
        }
    ) == {
        "n": 16.2,
        "i": 7,
        "t": "2025-01-02T03:04:05+00:00",
        "u": "00000000-0000-0000-0000-000000000001",
        "b": "AAE=",
        "l": [1, 0.5],
    }


# --- secrets ----------------------------------------------------------------------------------


def test_keychain_aliases_are_found_in_templates() -> None:
    config = {"headers": {"Authorization": "Bearer {{ keychain.api.token }}"}, "url": "{{ other }}"}
    assert aliases(config) == {"api"}
    assert aliases({"x": "{{ keychain.a.b }}-{{ keychain.c.d }}"}) == {"a", "c"}


async def test_keychain_templates_are_rendered_from_the_wallet_and_remembered() -> None:
    wallet = secrets({"api": {"token": "abcd-1234", "host": "example.org"}})
    original = call(
        "http",
        {
            "url": "https://{{ keychain.api.host }}/x",
            "headers": {"A": "Bearer {{ keychain.api.token }}"},
            "n": "{{ 1 }}",
        },
        input={"k": "{{ keychain.api.token }}"},
        secrets=wallet,
    )
    resolved = await resolve_keychain(original)
    assert resolved.config == {
        "url": "https://example.org/x",
        "headers": {"A": "Bearer abcd-1234"},
        "n": "{{ 1 }}",
    }
    assert resolved.input == {"k": "abcd-1234"}
    # Values under non-secret connection keys (host) stay readable; the token does not.
    assert wallet.redact({"out": "token abcd-1234 at example.org", "v": "abcd-1234"}) == {
        "out": f"token {REDACTED} at example.org",
        "v": REDACTED,
    }


async def test_a_missing_alias_fails_the_tool_with_a_clear_message() -> None:
    class Echo:
        async def run(self, call: ToolCall) -> ToolResult:
            return ToolResult(ok=True, data=call.config)

    runner = ToolRunner({"noop": Echo()})
    result = await runner.run(call("noop", {"x": "{{ keychain.nope.value }}"}, secrets=secrets({})))
    assert (result.ok, result.error) == (False, "credential 'nope' not found in the secrets wallet")


async def test_secrets_tool_reads_the_environment_and_redacts_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOETL_TEST_SECRET_VALUE", "hunter22")
    wallet = secrets({})
    found = await SecretsTool().run(call("secrets", {"name": "NOETL_TEST_SECRET_VALUE"}, secrets=wallet))
    assert found.data == {"value": "hunter22"}
    assert wallet.redact(found.data) == {"value": REDACTED}
    missing = await SecretsTool().run(call("secrets", {"name": "NOETL_TEST_NO_SUCH_VARIABLE"}))
    assert missing.error == "Secret not found in environment: NOETL_TEST_NO_SUCH_VARIABLE"


async def test_a_credential_is_resolved_once_per_command() -> None:
    wallet = FakeWallet({"pg": {"password": "pw-123456"}})
    command = CommandSecrets(wallet, 1)  # type: ignore[arg-type]
    first, second = await asyncio.gather(command.credential("pg"), command.credential("pg"))
    assert first == second == {"password": "pw-123456"}
    assert wallet.reads == ["pg"]


def test_an_oversized_result_fails_with_a_clear_error() -> None:
    big = ToolResult(ok=True, data={"blob": "x" * 5000}, stdout="printed")
    assert _bounded(big, 10_000) is big
    failed = _bounded(big, 1024)
    assert not failed.ok and failed.data is None and failed.stdout == "printed"
    assert failed.error is not None and failed.error.startswith(
        "result too large: the step's result data is 5"
    )
    assert "limit of 1024 bytes (NOETL_WORKER_MAX_RESULT_BYTES)" in failed.error
