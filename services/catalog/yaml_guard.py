"""Bounds on a registered document, checked before it is parsed into objects (docs/decisions.md).

YAML aliases let a few hundred bytes stand for billions of nodes ("billion laughs"); building
them would take the catalog's memory, and storing them every later reader's. So the event stream
is read once, with constant memory, counting the nodes the document stands for once its aliases
are expanded, and the document is refused as soon as a count passes its limit: more nodes than
`MAX_NODES`, more aliases than `MAX_ALIASES`, an alias to a node that contains it (a recursive
document), nesting deeper than `MAX_NESTING_DEPTH`, or a NUL character in a value (which YAML's
`"\\0"` escape produces and Postgres cannot store).
"""

from __future__ import annotations

import yaml

from kernel.errors import InvalidArgument
from kernel.jsonutil import MAX_NESTING_DEPTH

# Real playbooks have a few thousand nodes and a handful of anchors.
MAX_NODES = 100_000
MAX_ALIASES = 1_000
# libyaml's parser when the wheel has it: ~30x faster at reading events than the pure-Python one,
# which the loader that follows still uses (its error messages are the documented ones).
_SCANNER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TOO_MANY_NODES = f"the document stands for more than {MAX_NODES} nodes once its aliases are expanded"


def check_yaml(text: str) -> None:
    """Raises InvalidArgument naming the first limit the document passes; YAML syntax errors are
    left to the parser that follows, which reports them with their position."""
    expanded = 0
    aliases = 0
    sizes: dict[str, int] = {}  # anchor → nodes it stands for
    # Open collections: (anchor, nodes so far including itself).
    open_: list[tuple[str | None, int]] = []
    try:
        for event in yaml.parse(text, Loader=_SCANNER):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise _refused(f"the document has more than {MAX_ALIASES} aliases")
                if any(anchor == event.anchor for anchor, _ in open_):
                    raise _refused(f"alias *{event.anchor} refers to a node that contains it")
                size = sizes.get(event.anchor or "", 1)
            elif isinstance(event, yaml.ScalarEvent):
                if "\x00" in event.value:
                    raise _refused("a value contains the NUL character (\\0), which cannot be stored")
                size = 1
            elif isinstance(event, yaml.CollectionStartEvent):
                open_.append((event.anchor, 1))
                if len(open_) > MAX_NESTING_DEPTH:
                    raise _refused(f"the document nests deeper than {MAX_NESTING_DEPTH} levels")
                expanded += 1
                if expanded > MAX_NODES:
                    raise _refused(_TOO_MANY_NODES)
                continue
            elif isinstance(event, yaml.CollectionEndEvent):
                anchor, size = open_.pop()
                if anchor is not None:
                    sizes[anchor] = size
                _add(open_, size)
                continue
            else:
                continue
            if event.anchor is not None and isinstance(event, yaml.ScalarEvent):
                sizes[event.anchor] = 1
            expanded += size
            if expanded > MAX_NODES:
                raise _refused(_TOO_MANY_NODES)
            _add(open_, size)
    except yaml.YAMLError:
        return


def _add(open_: list[tuple[str | None, int]], size: int) -> None:
    if open_:
        anchor, total = open_[-1]
        open_[-1] = (anchor, total + size)


def _refused(reason: str) -> InvalidArgument:
    return InvalidArgument(f"Error registering resource: {reason}.")
