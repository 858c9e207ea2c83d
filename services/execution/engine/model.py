"""The typed, immutable playbook model produced by `dsl.parse_playbook`.

Maps inside the model (`workload`, tool configs, `set` blocks) hold plain decoded YAML and
are never mutated after parsing; they are shared freely between passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class NextMode(StrEnum):
    EXCLUSIVE = "exclusive"
    INCLUSIVE = "inclusive"


class OnNoMatch(StrEnum):
    FAIL = "fail"
    COMPLETE = "complete"


class LoopMode(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    CURSOR = "cursor"


KNOWN_TOOL_KINDS = frozenset(
    {
        "http", "postgres", "duckdb", "ducklake", "python", "workbook", "playbook", "playbooks",
        "secrets", "iterator", "container", "script", "snowflake", "transfer", "snowflake_transfer",
        "gcs", "gateway", "nats", "shell", "artifact", "noop", "task_sequence", "rhai",
        "subscription", "wasm",
    }
)  # fmt: skip

PIPELINE_KIND = "task_sequence"
END_STEP = "end"
START_STEP = "start"


@dataclass(frozen=True, slots=True)
class Arc:
    """One outgoing arc: a router arc, a targets-list entry, a bare name or an on_error arc."""

    step: str
    when: str | None = None
    set: Mapping[str, Any] | None = None
    # Targets-list `args`: merged verbatim into the target's render context (dsl.md §4).
    args: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Next:
    mode: NextMode
    arcs: tuple[Arc, ...]
    on_no_match: OnNoMatch = OnNoMatch.FAIL


@dataclass(frozen=True, slots=True)
class Tool:
    """A single tool. `config` is the tool map without `kind` and without its input map."""

    kind: str
    config: Mapping[str, Any]
    input: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PipelineTask:
    label: str
    kind: str
    config: Mapping[str, Any]  # the task map in flat form, `name` = label


@dataclass(frozen=True, slots=True)
class Pipeline:
    tasks: tuple[PipelineTask, ...]

    @property
    def kind(self) -> str:
        return PIPELINE_KIND


@dataclass(frozen=True, slots=True)
class Loop:
    in_: Any
    iterator: str
    mode: LoopMode = LoopMode.SEQUENTIAL
    max_in_flight: int | None = None
    cursor: Mapping[str, Any] | None = None
    frame: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StepSpec:
    next_mode: NextMode = NextMode.EXCLUSIVE
    timeout: float | None = None
    on_error: tuple[Arc, ...] = ()
    raw: Mapping[str, Any] | None = None  # shipped as the command context's `spec`


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    tool: Tool | Pipeline
    desc: str | None = None
    when: str | None = None
    loop: Loop | None = None
    set: Mapping[str, Any] | None = None
    next: Next | None = None
    spec: StepSpec = field(default_factory=StepSpec)
    args: Mapping[str, Any] | None = None
    # Step-level `input` beside `tool`: the tool's input under it, key by key (dsl.md §3.1).
    input: Mapping[str, Any] | None = None

    @property
    def tool_kind(self) -> str:
        return self.tool.kind

    @property
    def is_terminal(self) -> bool:
        """A step without `next` ends its branch (dsl.md §3.2)."""
        return self.next is None


@dataclass(frozen=True, slots=True)
class Graph:
    """Arc structure derived once per playbook (see `graph.build_graph`)."""

    back_edges: frozenset[tuple[str, str]]
    # Steps reachable from each step in one or more hops (itself only when on a cycle).
    reach: Mapping[str, frozenset[str]]
    # Distinct sources of forward `next` arcs, per target.
    upstreams: Mapping[str, tuple[str, ...]]
    # Steps with a back-edge: their unmatched arcs are never skipped (dsl.md §12.9).
    branch_points: frozenset[str]

    def is_back_edge(self, src: str, target: str) -> bool:
        return (src, target) in self.back_edges

    def reaches(self, src: str, target: str) -> bool:
        """True when `target` is `src` or can run after it by following arcs."""
        return src == target or target in self.reach.get(src, frozenset())


@dataclass(frozen=True, slots=True)
class Playbook:
    api_version: str
    kind: str
    name: str
    path: str | None
    workload: Mapping[str, Any]
    steps: tuple[Step, ...]
    graph: Graph
    description: str | None = None
    keychain: tuple[Mapping[str, Any], ...] = ()
    by_name: Mapping[str, Step] = field(default_factory=dict)

    def step(self, name: str) -> Step | None:
        return self.by_name.get(name)
