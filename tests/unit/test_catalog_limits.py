"""What the catalog refuses before it parses or stores a document: YAML bombs, NUL, deep nesting,
paths outside the grammar (docs/decisions.md, "Hostile input")."""

from __future__ import annotations

import resource
import time

import pytest

from kernel.errors import InvalidArgument
from kernel.jsonutil import MAX_NESTING_DEPTH
from services.catalog.registry import MAX_PATH_LENGTH, check_path, parse_document
from services.catalog.yaml_guard import MAX_ALIASES, MAX_NODES

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x, path: limits/x}\n"


def laughs(levels: int) -> str:
    """A billion-laughs document: 10**levels strings from a few hundred bytes."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return HEAD + "\n".join(lines) + "\n"


def refused(text: str) -> str:
    with pytest.raises(InvalidArgument) as caught:
        parse_document(text, "Playbook")
    return str(caught.value.detail)


def test_a_billion_laughs_is_refused_at_once_without_expanding_it() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    detail = refused(laughs(9))
    assert detail == (
        f"Error registering resource: the document stands for more than {MAX_NODES} nodes "
        "once its aliases are expanded."
    )
    assert time.perf_counter() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB


def test_a_document_within_the_limits_still_registers_with_its_aliases() -> None:
    doc = parse_document(laughs(3), "Playbook")
    assert len(doc.payload["l2"]) == 10 and doc.payload["l2"][0][0] == ["lol"] * 10


def test_too_many_aliases_a_recursive_alias_nul_and_deep_nesting_are_refused() -> None:
    many = HEAD + "a: &a 1\nb: [" + ",".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    assert refused(many).endswith(f"the document has more than {MAX_ALIASES} aliases.")
    assert refused(HEAD + "a: &a [*a]\n").endswith("alias *a refers to a node that contains it.")
    assert refused(HEAD + 'a: "x\\0y"\n').endswith(
        "a value contains the NUL character (\\0), which cannot be stored."
    )
    deep = HEAD + "a: " + "[" * (MAX_NESTING_DEPTH + 1) + "]" * (MAX_NESTING_DEPTH + 1) + "\n"
    assert refused(deep).endswith(f"the document nests deeper than {MAX_NESTING_DEPTH} levels.")


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../../etc/passwd", "segment '..' is not letters, digits, '_', '-' and '.' (not starting with '.')"),
        ("/etc/passwd", "it must be relative (no leading '/')"),
        ("a\\b", "a backslash is not a path separator"),
        ("", "it is empty"),
        ("a//b", "segment '' is not letters, digits, '_', '-' and '.' (not starting with '.')"),
        ("x" * (MAX_PATH_LENGTH + 1), f"longer than {MAX_PATH_LENGTH} characters ({MAX_PATH_LENGTH + 1})"),
    ],
)
def test_a_path_outside_the_grammar_is_refused_naming_why(path: str, problem: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_path(path)
    assert str(caught.value.detail).endswith(f": {problem}.")


@pytest.mark.parametrize(
    "path", ["examples/hello", "tests/e2e/bad/no_start", "Grüße/v1.2-x", "x" * MAX_PATH_LENGTH]
)
def test_paths_in_the_grammar_are_accepted(path: str) -> None:
    check_path(path)
