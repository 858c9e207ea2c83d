"""The cyclic garbage collector of a long-running mesh process, set once start-up is done.

CPython runs a young collection every 700 net allocations of container objects and, every
hundred of those, a full one over every object the process holds. A request allocates
thousands of short-lived containers (frames, dicts, protobuf and JSON values) that reference
counting frees on its own, so the collector spends its time scanning what start-up built and
what can never be garbage: modules, routes, descriptors, pools. On the gateway under event
ingest that was a fifth of its CPU (bench/README.md, "Garbage collection").

`settle()` moves everything alive at the end of start-up out of the collector's sight for good
(`gc.freeze`), runs the young collection every 20,000 net allocations and the older ones five
and ten times more rarely than by default. Garbage without cycles is freed by reference counting
as before; a cycle waits longer, and only one that outlived a young collection waits for a full
one, which then sees only what was allocated since start.
"""

from __future__ import annotations

import gc

# Young: net allocations between young collections; middle and old: collections of the
# generation below between two of their own.
THRESHOLDS = (20_000, 50, 100)


def settle() -> None:
    """Call once, when start-up is done and before serving: what exists now lives as long as the process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
