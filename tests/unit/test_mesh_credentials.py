"""The mesh tokens the launcher makes: one private token per caller, only digests shared."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from kernel.mesh_auth import TokenTable, parse_tokens
from kernel.mesh_policy import CALLERS, LAUNCHER
from noetl_mesh.cli import main
from noetl_mesh.credentials import TOKENS_FILE, add_worker, mesh_credentials


def test_each_caller_gets_its_own_token_and_servers_only_digests(tmp_path: Path) -> None:
    made = mesh_credentials(tmp_path, {}, ("catalog", "worker"))
    assert made is not None
    table = TokenTable(str(made.directory / TOKENS_FILE))
    # A worker process is one worker: its identity names the worker id it claims under.
    worker = f"worker:{socket.gethostname()}-worker"
    for process, identity in (("catalog", "catalog"), ("worker", worker), (LAUNCHER, LAUNCHER)):
        token = (made.directory / f"{process}.token").read_text().strip()
        assert table.caller(token) == identity
        assert token not in (made.directory / TOKENS_FILE).read_text()
    assert made.for_process("worker") == {
        "NOETL_MESH_IDENTITY": worker,
        "NOETL_MESH_TOKEN_FILE": str(made.directory / "worker.token"),
    }
    assert made.shared()["NOETL_MESH_AUTH"] == "token"


def test_one_more_worker_gets_a_token_of_its_own_identity(tmp_path: Path) -> None:
    made = mesh_credentials(tmp_path, {}, ("worker",))
    assert made is not None
    env = add_worker(made.directory, "w-extra")
    token = Path(env["NOETL_MESH_TOKEN_FILE"]).read_text().strip()
    assert env["NOETL_MESH_IDENTITY"] == "worker:w-extra"
    assert TokenTable(str(made.directory / TOKENS_FILE)).caller(token) == "worker:w-extra"
    assert Path(env["NOETL_MESH_TOKEN_FILE"]).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "configured", [{"NOETL_MESH_AUTH": "off"}, {"NOETL_MESH_TOKENS_FILE": "/etc/tokens"}]
)
def test_a_caller_who_configured_mesh_auth_gets_nothing_added(
    tmp_path: Path, configured: dict[str, str]
) -> None:
    assert mesh_credentials(tmp_path, configured, ("catalog",)) is None
    assert not (tmp_path / "mesh-auth").exists()


def test_noetl_mesh_tokens_writes_a_clusters_secret(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    assert main(["--home", str(tmp_path / "home"), "tokens", str(target)]) == 0
    callers = {caller for caller, _ in parse_tokens((target / TOKENS_FILE).read_text())}
    assert callers == set(CALLERS) - {LAUNCHER}
    assert sorted(p.name for p in target.iterdir()) == sorted([TOKENS_FILE, *(f"{c}.token" for c in callers)])
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in target.iterdir())


def test_the_tokens_file_must_be_well_formed() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_tokens("catalog " + "a" * 64 + "\nworker not-a-digest\n")


def test_workers_added_within_one_clock_tick_are_both_known(tmp_path: Path) -> None:
    """A server that read the tokens file between two additions learns the second as well,
    even when the file system gave both versions the same modification time."""
    made = mesh_credentials(tmp_path, {}, ("catalog",))
    assert made is not None
    tokens = made.directory / TOKENS_FILE
    add_worker(made.directory, "w-a")
    stamp = tokens.stat().st_mtime_ns
    table = TokenTable(str(tokens))
    add_worker(made.directory, "w-b")
    os.utime(tokens, ns=(stamp, stamp))  # the same tick as the version the table read
    table._file._checked = float("-inf")  # the recheck interval has passed
    b_token = (made.directory / "worker@w-b.token").read_text().strip()
    assert table.caller(b_token) == "worker:w-b"
