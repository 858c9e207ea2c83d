"""A second gateway process in front of the session mesh's services, with settings of its own.

For what the session gateway cannot show without restarting the whole mesh: an internal token
that is set, an Auth0 block in the runtime contract. It is the real `python -m gateway_http`,
started with the mesh's wiring plus the extra variables, on a port of its own.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from noetl_mesh.mesh import mesh_environment
from noetl_mesh.procs import free_ports
from tests.helpers.mesh import ProcessMesh
from tests.helpers.waiting import wait_for

STOP_SECONDS = 10.0


@asynccontextmanager
async def side_gateway(mesh: ProcessMesh, log: Path, env: Mapping[str, str]) -> AsyncIterator[str]:
    """Runs the extra gateway until the block ends; yields its base URL. Its output goes to `log`."""
    port = free_ports(1)[0]
    wiring = mesh_environment(
        mesh.info.ports, pg_dsn=mesh.pg_dsn, nats_url=mesh.info.nats_url, run_dir=mesh.run_dir
    )
    # It calls the services as the gateway, with the token `noetl-mesh up` made for it.
    environ = {**os.environ, **wiring, **mesh.mesh_env("gateway"), "NOETL_PORT": str(port), **env}
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway_http", env=environ, stdout=output, stderr=output
        )
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2.0) as http:

            async def healthy() -> bool:
                if process.returncode is not None:
                    output = await asyncio.to_thread(log.read_text)
                    raise AssertionError(f"the side gateway exited with {process.returncode}: {output}")
                try:
                    return (await http.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, within=30.0, interval=0.1, what="the side gateway to answer /health")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
