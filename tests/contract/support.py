"""What the contract tests share: the contract playbook and the response check."""

from __future__ import annotations

import httpx


def expect(response: httpx.Response, status: int) -> bytes:
    """The body of a JSON response with `status`; anything else fails with the body shown."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"] == "application/json"
    return response.content


LINEAR_PATH = "contract/linear"

# Non-ASCII on purpose: responses must carry it literally (http-api.md §1.2, ensure_ascii=False).
LINEAR = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: linear
  path: contract/linear
workload:
  greeting: "Grüße"
workflow:
  - step: start
    tool:
      kind: python
      input:
        greeting: "{{ greeting }}"
      code: |
        print(f"greeting={greeting}")
        result = {"greeting": greeting, "count": 2}
    next:
      arcs:
        - step: end
  - step: end
    tool:
      kind: python
      code: |
        result = {"status": "complete"}
"""
