"""Registration rules (http-api.md §3.1): decode, parse, kind and path, metadata."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import yaml

from kernel.errors import InvalidArgument
from kernel.jsonutil import MAX_NESTING_DEPTH
from kernel.timeutil import rfc3339, utcnow
from services.catalog.yaml_guard import check_yaml

_KIND_ALIASES = {
    "playbook": "playbook",
    "credential": "credential",
    "credentials": "credential",
    "secret": "credential",
    "secrets": "credential",
    "mcp": "mcp",
    "modelcontextprotocol": "mcp",
    "agent": "agent",
    "memory": "memory",
}
EXECUTABLE_KINDS = frozenset({"playbook", "agent"})
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=\s]+")
_WHITESPACE = re.compile(r"\s+")
# The catalog path grammar (docs/decisions.md): segments of letters, digits, `_`, `-` and `.`, not
# starting with a dot (so no `.`, `..` or hidden names), joined by single `/`; relative; at most
# MAX_PATH_LENGTH characters. A path names a playbook; it must never read as a file system path.
MAX_PATH_LENGTH = 255
_SEGMENT = re.compile(r"[\w-][\w.-]*")


@dataclass(frozen=True, slots=True)
class Document:
    content: str
    payload: Any
    kind: str
    path: str
    meta: dict[str, Any]


def decode_content(content: str) -> str:
    """Base64 (standard alphabet, padding optional, line breaks ignored) when it decodes to UTF-8.

    Text with any other character (a `:` of plain YAML, say) is taken as-is: discarding such
    characters, as the reference does, lets short plain YAML decode into garbage.
    """
    if not _BASE64_TEXT.fullmatch(content):
        return content
    cleaned = _WHITESPACE.sub("", content).rstrip("=")
    if not cleaned:
        return content
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return content


def normalize_kind(kind: str) -> str:
    lowered = kind.strip().lower()
    return _KIND_ALIASES.get(lowered, lowered)


def parse_document(content: str, resource_type: str) -> Document:
    """Raises InvalidArgument when the content is not a YAML mapping.

    The reference answers 500 for unparseable YAML; bad input is the caller's error, so 400.
    """
    text = decode_content(content)
    check_yaml(text)
    try:
        payload = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"Error registering resource: {_one_line(exc)}.") from exc
    except RecursionError:  # past a syntax error the two parsers may read differently
        raise InvalidArgument(
            f"Error registering resource: the document nests deeper than {MAX_NESTING_DEPTH} levels."
        ) from None
    if not isinstance(payload, dict):
        raise InvalidArgument("Error registering resource: content is not a YAML mapping.")
    doc = payload
    raw_metadata = doc.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    declared = doc.get("kind")
    kind = normalize_kind(declared if isinstance(declared, str) and declared.strip() else resource_type)
    path = (
        _first_text(metadata.get("path"), doc.get("path"), metadata.get("name"), doc.get("name")) or "unknown"
    )
    check_path(path)
    return Document(content=text, payload=payload, kind=kind or "playbook", path=path, meta=_meta(metadata))


def check_path(path: str) -> None:
    """Raises InvalidArgument naming what is wrong with a path outside the grammar."""
    shown = path if len(path) <= 80 else path[:80] + "..."
    if not path:
        problem = "it is empty"
    elif len(path) > MAX_PATH_LENGTH:
        problem = f"longer than {MAX_PATH_LENGTH} characters ({len(path)})"
    elif "\\" in path:
        problem = "a backslash is not a path separator"
    elif path.startswith("/"):
        problem = "it must be relative (no leading '/')"
    else:
        bad = next((segment for segment in path.split("/") if not _SEGMENT.fullmatch(segment)), None)
        if bad is None:
            return
        problem = f"segment {bad!r} is not letters, digits, '_', '-' and '.' (not starting with '.')"
    raise InvalidArgument(f"Error registering resource: invalid path {shown!r}: {problem}.")


def _meta(metadata: dict[str, Any]) -> dict[str, Any]:
    capabilities = metadata.get("capabilities")
    terminal = metadata.get("terminal")
    terminal_map = terminal if isinstance(terminal, dict) else {}
    scopes = terminal_map.get("scopes")
    return {
        "registered_at": rfc3339(utcnow()),
        "agent": bool(metadata.get("agent", False)),
        "capabilities": [str(c) for c in capabilities] if isinstance(capabilities, list) else [],
        "terminal": terminal_map,
        "terminal_visible": bool(terminal_map.get("visible", False)),
        "terminal_scopes": [str(s) for s in scopes] if isinstance(scopes, list) else [],
    }


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
