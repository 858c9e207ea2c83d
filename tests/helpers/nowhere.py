"""Addresses nothing listens on, for every service a component may call.

A test that leaves one address at its default (`127.0.0.1:5005x`) talks to whatever runs there,
such as a `noetl-mesh up` stack, and passes or fails by that; so tests start from `NOWHERE_ENV`
and name only the services they run.
"""

from __future__ import annotations

from collections.abc import Mapping

# Port 9 (discard) on loopback: refused at once, so a call that gets there answers 503 quickly.
NOWHERE = "127.0.0.1:9"
NOWHERE_ENV: Mapping[str, str] = {
    # In-process components in these tests call nothing real: no mesh credentials to present.
    "NOETL_MESH_AUTH": "off",
    "NOETL_CATALOG_ADDR": NOWHERE,
    "NOETL_EXECUTION_ADDRS": NOWHERE,
    "NOETL_EVENTS_ADDRS": NOWHERE,
    "NOETL_OUTBOX_ADDRS": NOWHERE,
    "NOETL_SECRETS_ADDR": NOWHERE,
}
