"""The OpenAPI 3.1 document of the gateway's HTTP API (http-api.md), served at `GET /openapi.json`.

Each route declares its operation once, beside its `Endpoint` (`Operation`, in `build`); the
objects several routes share are component schemas (`schemas_*`), referenced with `$ref`.
`document` assembles the document by walking the app's endpoints; `python -m gateway_http.openapi`
writes `docs/openapi.json` from the same endpoints. This package module imports nothing, so route
modules can import `build` without a cycle.
"""
