// A run as the console sees it: the console stream's events folded into steps, commands
// (one per loop iteration) and arcs. No drawing here; the views read this model.

const TERMINAL = {
  "playbook.completed": "COMPLETED", "playbook_completed": "COMPLETED", "workflow.completed": "COMPLETED",
  "playbook.failed": "FAILED", "playbook_failed": "FAILED", "workflow.failed": "FAILED",
  "execution.cancelled": "CANCELLED", "playbook.cancelled": "CANCELLED", "playbook_cancelled": "CANCELLED",
};
const DONE = new Set(["completed", "failed", "skipped"]);

// A playbook step's outgoing arcs from any of the four `next` shapes (dsl.md §4), plus `spec.on_error`.
function arcsOf(step) {
  const arcs = [];
  const next = step.next;
  const add = (item) => {
    if (typeof item === "string") arcs.push({ to: item, when: null });
    else if (item && typeof item.step === "string") arcs.push({ to: item.step, when: item.when ?? null });
  };
  if (typeof next === "string") add(next);
  else if (Array.isArray(next)) next.forEach(add);
  else if (next && Array.isArray(next.arcs)) next.arcs.forEach(add);
  else if (next && typeof next.step === "string") add(next);
  const onError = step.spec && step.spec.on_error;
  if (typeof onError === "string") arcs.push({ to: onError, when: "on error", onError: true });
  else if (onError && typeof onError.step === "string") arcs.push({ to: onError.step, when: "on error", onError: true });
  return arcs;
}

function toolKind(step) {
  if (Array.isArray(step.tool)) return "pipeline";
  return (step.tool && step.tool.kind) || "?";
}

export class Run {
  constructor(playbook) {
    const workflow = (playbook && Array.isArray(playbook.workflow)) ? playbook.workflow : [];
    this.status = "RUNNING";
    this.error = null;
    this.terminal = null;
    this.started = null;
    this.ended = null;
    this.events = [];
    this.commands = new Map();
    this.steps = new Map();
    this.arcs = new Map();      // "src->dst" → {src, dst, when, state: idle|taken|skipped}
    this.upstream = new Map();  // dst → [src]
    this.seq = 0;
    for (const step of workflow) {
      if (step && typeof step.step === "string") this._step(step.step, step);
    }
    for (const step of workflow) {
      if (!step || typeof step.step !== "string") continue;
      for (const arc of arcsOf(step)) {
        const key = `${step.step}->${arc.to}`;
        if (this.arcs.has(key)) continue;
        this.arcs.set(key, { src: step.step, dst: arc.to, when: arc.when, onError: !!arc.onError, state: "idle" });
        if (!this.upstream.has(arc.to)) this.upstream.set(arc.to, []);
        this.upstream.get(arc.to).push(step.step);
      }
    }
  }

  _step(name, definition = null) {
    let step = this.steps.get(name);
    if (!step) {
      step = {
        name, definition, declared: !!definition, tool: definition ? toolKind(definition) : null,
        loop: !!(definition && definition.loop), state: "pending", first: null, last: null,
        expected: null, entries: 0, commands: [], error: null, doneSeq: 0, loopSummary: null,
      };
      this.steps.set(name, step);
    }
    return step;
  }

  get running() { return this.terminal === null; }

  apply(ev) {
    this.events.push(ev);
    if (!this.started) this.started = ev.at;
    const kind = ev.type;
    if (TERMINAL[kind]) {
      this.status = TERMINAL[kind];
      this.terminal = kind;
      this.ended = ev.at;
      this.error = ev.error || (ev.context && ev.context.error) || null;
      if (this.status === "CANCELLED") {
        // Work in flight when the run was cancelled stops counting (dsl.md §13).
        for (const step of this.steps.values()) {
          if (step.state === "queued" || step.state === "running") { step.state = "cancelled"; step.last = ev.at; }
        }
        for (const command of this.commands.values()) {
          if (command.state === "queued" || command.state === "running") { command.state = "cancelled"; command.end = ev.at; }
        }
      }
      return;
    }
    if (!ev.node || kind === "playbook.initialized" || kind === "workflow.initialized") return;
    const step = this._step(ev.node);
    step.first = step.first || ev.at;
    switch (kind) {
      case "step.enter":
        step.entries += 1;
        if (ev.expected !== undefined) step.expected = ev.expected;
        if (DONE.has(step.state)) { step.last = null; step.error = null; }
        step.state = "queued";
        this._credit(step.name, "taken");
        break;
      case "step.skipped":
        step.state = "skipped";
        step.last = ev.at;
        this._done(step);
        this._credit(step.name, "skipped");
        break;
      case "command.issued": {
        const command = {
          id: ev.cmd, step: step.name, iteration: ev.iteration, state: "queued", issued: ev.at,
          start: null, end: null, out: null, error: null, worker: null, childPath: ev.child_path || null,
        };
        this.commands.set(String(ev.cmd), command);
        step.commands.push(command);
        if (ev.tool) step.tool = ev.tool;
        if (step.state === "pending") step.state = "queued";
        break;
      }
      case "command.claimed":
      case "command.started":
      case "command.heartbeat": {
        const command = this._command(ev);
        if (command) {
          command.state = "running";
          command.start = command.start || ev.at;
          command.worker = ev.worker || command.worker;
        }
        if (!DONE.has(step.state)) step.state = "running";
        break;
      }
      case "call.done":
      case "call.error": {
        const command = this._command(ev);
        if (command) {
          command.out = ev.out || command.out;
          if (kind === "call.error") command.error = ev.error || (ev.out && ev.out.error) || "error";
        }
        break;
      }
      case "step.exit":
      case "command.completed": {
        const command = this._command(ev);
        if (command && command.state !== "failed") {
          if (ev.out && !command.out) command.out = ev.out;
          if (command.error) command.state = "failed";
          else command.state = "completed";
          command.end = command.end || ev.at;
        }
        if (!step.loop && step.state !== "failed" && !(command && command.state === "failed")) {
          step.state = "completed";
          step.last = ev.at;
          this._done(step);
        }
        break;
      }
      case "command.failed": {
        const command = this._command(ev);
        if (command) { command.state = "failed"; command.error = ev.error || command.error; command.end = ev.at; }
        step.state = "failed";
        step.error = ev.error || (command && command.error) || "failed";
        step.last = ev.at;
        this._done(step);
        break;
      }
      case "loop.done":
        step.loopSummary = ev.context || null;
        if (step.state !== "failed") step.state = "completed";
        step.last = ev.at;
        this._done(step);
        break;
      default:
        break;
    }
  }

  _command(ev) {
    return ev.cmd === undefined || ev.cmd === null ? null : this.commands.get(String(ev.cmd)) || null;
  }

  _done(step) {
    step.doneSeq = ++this.seq;
  }

  // The arc into `name` that fired: from the upstream step that finished last, preferring one
  // that completed (a skipped upstream leads on only through a skip chain, dsl.md §12.5).
  _credit(name, state) {
    const sources = (this.upstream.get(name) || []).map((src) => this.steps.get(src)).filter((s) => s && s.doneSeq);
    const latest = (steps) => steps.reduce((best, s) => (!best || s.doneSeq > best.doneSeq ? s : best), null);
    const best = latest(sources.filter((s) => s.state !== "skipped")) || latest(sources);
    if (best) this.arcs.get(`${best.name}->${name}`).state = state;
  }

  // Counts of a step's commands by state: loop progress.
  tally(step) {
    const counts = { queued: 0, running: 0, completed: 0, failed: 0 };
    for (const command of step.commands) counts[command.state] = (counts[command.state] || 0) + 1;
    return counts;
  }
}

export function ms(from, to) {
  if (!from) return null;
  const end = to ? new Date(to).getTime() : Date.now();
  return end - new Date(from).getTime();
}
