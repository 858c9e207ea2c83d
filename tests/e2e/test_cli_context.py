"""The real `noetl` CLI bootstrapping a context from the gateway's runtime contract (cli-wire.md §4.14).

`noetl context init NAME --from-gateway URL --yes` reads `GET URL/api/runtime/contract` and writes
`$HOME/.noetl/config.yaml`. Every run gets a home of its own, so a developer's contexts are never
read or touched. The Auth0 case needs a gateway with `GATEWAY_AUTH0_*` set: a second gateway
process in front of the session mesh.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.cli import noetl
from tests.helpers.mesh import Completed, ProcessMesh
from tests.helpers.side_gateway import side_gateway

pytestmark = pytest.mark.e2e

AUTH0 = {
    "GATEWAY_AUTH0_DOMAIN": " acme.auth0.com ",
    "GATEWAY_AUTH0_CLIENT_ID": "abc123",
    "GATEWAY_AUTH0_REDIRECT_URI": "https://app.example.com/login",
    # Empty: left out of the contract, so the CLI shows it as missing.
    "GATEWAY_AUTH0_AUDIENCE": "",
}


@pytest.fixture
def home(cli_env: dict[str, str]) -> Path:
    """The CLI's own home: where `context init` writes `.noetl/config.yaml`."""
    return Path(cli_env["HOME"])


@pytest.fixture
async def auth0_gateway(process_mesh: ProcessMesh, tmp_path: Path) -> AsyncIterator[str]:
    async with side_gateway(process_mesh, tmp_path / "gateway.log", AUTH0) as url:
        yield url


async def context_init(env: dict[str, str], name: str, url: str) -> Completed:
    # No --server-url: the command names its gateway itself.
    return await noetl(env, None, "context", "init", name, "--from-gateway", url, "--yes")


def saved_context(home: Path, name: str) -> dict[str, Any]:
    config = yaml.safe_load((home / ".noetl" / "config.yaml").read_text())
    context: dict[str, Any] = config["contexts"][name]
    return context


async def test_context_init_without_auth0(
    process_mesh: ProcessMesh, cli_env: dict[str, str], home: Path
) -> None:
    url = process_mesh.gateway_url
    done = await context_init(cli_env, "mesh", url)

    assert done.returncode == 0, done.describe()
    assert f"{url}/api/runtime/contract" in done.stdout
    assert "does not carry an ``auth0`` block" in done.stderr, done.describe()
    context = saved_context(home, "mesh")
    assert context["server_url"] == url
    assert context["runtime"] == "distributed"
    assert context["gateway_auth0_domain"] is None


async def test_context_init_with_auth0(auth0_gateway: str, cli_env: dict[str, str], home: Path) -> None:
    done = await context_init(cli_env, "sso", auth0_gateway)

    assert done.returncode == 0, done.describe()
    assert "Next step:  noetl auth login --browser-pkce --context sso" in done.stdout, done.describe()
    assert "auth0_audience:       (none)" in done.stdout, done.describe()
    context = saved_context(home, "sso")
    assert context["server_url"] == auth0_gateway
    assert context["runtime"] == "distributed"
    assert context["gateway_auth0_domain"] == "acme.auth0.com"
    assert context["gateway_auth0_client_id"] == "abc123"
    assert context["gateway_auth0_redirect_uri"] == "https://app.example.com/login"
    assert context["gateway_auth0_audience"] is None


async def test_context_init_from_a_path_without_the_contract(
    process_mesh: ProcessMesh, cli_env: dict[str, str], home: Path
) -> None:
    """The contract is only under `/api` of the gateway's root: elsewhere the gateway's JSON 404
    makes the CLI stop without writing anything."""
    done = await context_init(cli_env, "nowhere", f"{process_mesh.gateway_url}/noetl")

    assert done.returncode == 1, done.describe()
    assert "Gateway returned 404 Not Found" in done.stderr, done.describe()
    assert not (home / ".noetl" / "config.yaml").exists()
