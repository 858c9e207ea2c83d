"""`python -m gateway_http.openapi`: rewrite docs/openapi.json from the code.

The endpoints are those of a default deployment (every route, `/metrics` included). Their
channels are opened but never used, so no service needs to run and no mesh credential is read.
"""

from __future__ import annotations

import asyncio
import sys

from gateway_http.app import api_endpoints
from gateway_http.clients import GatewayClients
from gateway_http.openapi.build import Schema
from gateway_http.openapi.document import DOCS_FILE, document, render
from gateway_http.settings import GatewaySettings


async def default_document() -> Schema:
    settings = GatewaySettings.load({"NOETL_MESH_AUTH": "off"})
    clients = GatewayClients.connect(settings)
    try:
        return document(api_endpoints(clients, settings))
    finally:
        await clients.close()


def main() -> int:
    DOCS_FILE.write_text(render(asyncio.run(default_document())))
    print(f"wrote {DOCS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
