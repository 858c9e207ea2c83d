"""Arc analysis of a workflow: reachability, back-edges and fan-in upstreams.

An arc `src -> target` is a back-edge when `target` leads back to `src` by following arcs
(a self-loop, or a longer cycle such as `fetch_page -> check_pagination -> fetch_page`),
as in the reference engine. Back-edges never count as fan-in upstreams (a loop head would
otherwise wait for its own tail, dsl.md §12.6) and are the arcs that may re-enter a done
step (§12.9). `on_error` arcs count for reachability, not for fan-in.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.execution.engine.model import Graph, Step


def _successors(step: Step) -> list[str]:
    targets = [arc.step for arc in step.next.arcs] if step.next is not None else []
    targets.extend(arc.step for arc in step.spec.on_error)
    return list(dict.fromkeys(targets))


def build_graph(steps: Sequence[Step]) -> Graph:
    """Analyse the arcs of `steps` (whose arc targets are already known to exist)."""
    succ = {step.name: _successors(step) for step in steps}
    reach = {name: frozenset(_walk(succ, name)) for name in succ}
    back_edges = frozenset(
        (src, target)
        for src, targets in succ.items()
        for target in targets
        if target == src or src in reach.get(target, frozenset())
    )
    upstreams: dict[str, list[str]] = {}
    for step in steps:
        for arc in step.next.arcs if step.next is not None else ():
            sources = upstreams.setdefault(arc.step, [])
            if (step.name, arc.step) not in back_edges and step.name not in sources:
                sources.append(step.name)
    return Graph(
        back_edges=back_edges,
        reach=reach,
        upstreams={target: tuple(sources) for target, sources in upstreams.items() if sources},
        branch_points=frozenset(src for src, _ in back_edges),
    )


def _walk(succ: dict[str, list[str]], start: str) -> set[str]:
    """Steps reachable from `start` in one or more hops."""
    seen: set[str] = set()
    pending = list(succ.get(start, []))
    while pending:
        node = pending.pop()
        if node in seen or node not in succ:
            continue
        seen.add(node)
        pending.extend(succ[node])
    return seen
