"""Registration rules: content decoding, kinds, paths (http-api.md §3.1)."""

from __future__ import annotations

import base64

import pytest

from kernel.errors import InvalidArgument
from services.catalog.registry import decode_content, normalize_kind, parse_document

YAML = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata:\n  name: demo\n  path: tests/demo\nworkflow: []\n"


def test_base64_and_raw_content_decode_to_the_same_text() -> None:
    assert decode_content(base64.b64encode(YAML.encode()).decode()) == YAML
    assert decode_content(YAML) == YAML
    wrapped = base64.encodebytes(YAML.encode()).decode()  # line-wrapped, padded
    assert decode_content(wrapped) == YAML
    assert decode_content(base64.b64encode(YAML.encode()).decode().rstrip("=")) == YAML


def test_plain_yaml_is_never_mistaken_for_base64() -> None:
    assert decode_content("a: [b") == "a: [b"


@pytest.mark.parametrize(
    ("given", "kind"),
    [("Playbook", "playbook"), ("Credentials", "credential"), ("Secret", "credential"),
     ("ModelContextProtocol", "mcp"), ("Agent", "agent"), ("  Custom ", "custom")],
)  # fmt: skip
def test_kind_aliases(given: str, kind: str) -> None:
    assert normalize_kind(given) == kind


def test_document_kind_wins_over_resource_type_and_path_falls_back() -> None:
    doc = parse_document("kind: Agent\nmetadata: {name: helper}\n", "Playbook")
    assert (doc.kind, doc.path) == ("agent", "helper")
    assert parse_document("name: x\n", "Playbook").path == "x"
    assert parse_document("foo: 1\n", "Memory").path == "unknown"
    assert parse_document("foo: 1\n", "Memory").kind == "memory"


def test_metadata_flags() -> None:
    doc = parse_document("metadata: {name: a, agent: true, capabilities: [x, y]}\n", "Playbook")
    assert doc.meta["agent"] is True
    assert doc.meta["capabilities"] == ["x", "y"]
    assert list(doc.meta) == [
        "registered_at",
        "agent",
        "capabilities",
        "terminal",
        "terminal_visible",
        "terminal_scopes",
    ]


@pytest.mark.parametrize("content", ["a: [b", "just words", "- a\n- b\n"])
def test_non_mapping_content_is_refused(content: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^Error registering resource"):
        parse_document(content, "Playbook")
