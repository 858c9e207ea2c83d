// One execution: header and actions, the graph, the timeline, the selected step, the event log.
// Everything after the first load comes from the console's event stream (Server-Sent Events).
import { h, api, badge, fmtTime, fmtMs, block, errorBox, frameScheduler, VirtualList } from "./util.js";
import { Run, ms } from "./run.js";
import { Graph } from "./graph.js";
import { Timeline } from "./timeline.js";

const CHILD_REFRESH_MS = 3000;

export function executionView(id) {
  const el = h("div", { class: "page execution", "data-execution": id }, h("p", { class: "muted" }, "Loading…"));
  let source = null, ticker = null, childTimer = null, stopped = false;
  let run = null, view = null, redraw = null;
  const early = [];
  let ready;
  const started = new Promise((resolve) => { ready = resolve; });

  // The stream opens at once; its first event (playbook.initialized) names the catalog entry,
  // whose playbook gives the graph. Events that come before that are kept and replayed.
  source = new EventSource(`/ui/api/executions/${id}/stream`);
  source.onmessage = (message) => {
    const ev = JSON.parse(message.data);
    if (!run) {
      early.push(ev);
      if (early.length === 1) begin(ev).finally(ready);
      return;
    }
    receive(ev);
  };
  source.onerror = async () => {
    if (view) view.connection(source.readyState);
    if (run && !run.running) source.close();
    if (!run && early.length === 0 && source.readyState === EventSource.CLOSED) {
      // No stream at all: the detail route says why (an unknown execution is a 404).
      try { await api(`/api/executions/${id}?include_events=false`); el.replaceChildren(errorBox(`Execution ${id}: no event stream`)); }
      catch (err) { el.replaceChildren(errorBox(`Execution ${id}: ${err.message}`)); }
      ready();
    }
  };

  function receive(ev) {
    run.apply(ev);
    if (!run.running) { source.close(); if (view.hasSubPlaybooks) view.refreshChildren(); }
    redraw();
  }

  async function begin(first) {
    const context = first.context || {};
    let entry = null, problem = null;
    try {
      entry = await api("/api/catalog/resource", { method: "POST", body: { catalog_id: context.catalog_id } });
    } catch (err) {
      problem = errorBox(`The playbook of this run is not in the catalog (${err.message}); the graph shows only steps that ran.`);
    }
    if (stopped) return;
    const summary = {
      path: context.path || (entry && entry.path) || "unknown", version: entry ? entry.version : "?",
      start_time: first.at, parent_execution_id: first.parent || null, workload: context.workload,
    };
    run = new Run(entry ? entry.payload : null);
    el.replaceChildren();
    view = build(el, id, summary, run);
    if (problem) el.insertBefore(problem, el.children[1]);
    redraw = frameScheduler(view.draw);
    for (const ev of early.splice(0)) run.apply(ev);
    if (!run.running) source.close();
    view.connection(source.readyState);
    view.draw();
    ticker = setInterval(() => { if (run.running) redraw(); }, 1000);
    childTimer = setInterval(() => { if (run.running && view.hasSubPlaybooks) view.refreshChildren(); }, CHILD_REFRESH_MS);
    if (view.hasSubPlaybooks) await view.refreshChildren();
  }

  return {
    el, ready: started,
    stop: () => { stopped = true; source.close(); clearInterval(ticker); clearInterval(childTimer); },
  };
}

function build(el, id, summary, run) {
  let selected = null;
  let selectedCommand = null;
  let children = [];
  const status = h("span", { id: "run-status" });
  const duration = h("span", { class: "mono", id: "run-duration" });
  const error = h("div", { id: "run-error" });
  const live = h("span", { class: "conn-dot", id: "stream-state", title: "event stream" });
  const message = h("span", { class: "muted", id: "action-message" });
  const act = (label, idAttr, cls, fn) => h("button", { id: idAttr, class: cls, onclick: async (e) => {
    e.target.disabled = true;
    try { message.textContent = await fn(); } catch (err) { message.textContent = `${label}: ${err.message}`; }
    finally { e.target.disabled = false; draw(); }
  } }, label);
  const cancel = act("Cancel", "btn-cancel", "danger", async () => {
    const r = await api(`/api/executions/${id}/cancel`, { method: "POST", body: { cascade: false, reason: "cancelled from the console" } });
    return r.message;
  });
  const cascade = act("Cancel with children", "btn-cancel-cascade", "danger", async () => {
    const r = await api(`/api/executions/${id}/cancel`, { method: "POST", body: { cascade: true, reason: "cancelled from the console" } });
    return r.message;
  });
  const rerun = act("Rerun", "btn-rerun", "", async () => {
    const r = await api(`/api/executions/${id}/rerun`, { method: "POST", body: {} });
    location.hash = `#/executions/${r.execution_id}`;
    return `started ${r.execution_id}`;
  });
  const header = h("div", { class: "run-header" },
    h("div", {},
      h("h2", {}, h("a", { href: `#/catalog/${encodeURIComponent(summary.path)}` }, summary.path), h("span", { class: "muted" }, ` v${summary.version}`)),
      h("div", { class: "facts" },
        h("span", { class: "mono" }, `execution ${id}`), status, live,
        h("span", {}, "started ", h("span", { class: "mono" }, fmtTime(summary.start_time))),
        h("span", {}, "duration ", duration),
        summary.parent_execution_id ? h("a", { href: `#/executions/${summary.parent_execution_id}`, id: "parent-link" }, `↰ parent ${summary.parent_execution_id}`) : null)),
    h("div", { class: "actions" }, cancel, cascade, rerun, message));

  const graph = new Graph(run, (name) => select(name));
  const timeline = new Timeline(run, (name, command) => select(name, command));
  const panel = h("aside", { class: "step-panel", id: "step-panel" }, h("p", { class: "muted" }, "Select a step in the graph or the timeline."),
    block("Workload", summary.workload));
  const eventFilter = h("input", { type: "search", placeholder: "filter events: type, step, error…", id: "event-filter" });
  const eventDetail = h("pre", { class: "event-detail", id: "event-detail" });
  const eventList = new VirtualList({ rowHeight: 24, height: 320, className: "events", render: (ev) =>
    h("div", { class: `erow${ev.error ? " has-error" : ""}`, onclick: () => { eventDetail.textContent = JSON.stringify(ev, null, 2); } },
      h("span", { class: "mono muted" }, fmtTime(ev.at).slice(11)),
      h("span", { class: "etype" }, ev.type), h("span", {}, ev.node || ""),
      h("span", { class: "mono" }, ev.iteration !== undefined ? `#${ev.iteration}` : ""),
      h("span", { class: "err" }, ev.error || "")) });
  const eventCount = h("span", { class: "muted", id: "event-count" });
  eventFilter.addEventListener("input", () => drawEvents(true));

  el.append(header, error,
    h("div", { class: "run-body" },
      h("div", { class: "run-main" },
        h("section", { class: "card" }, h("h3", { text: "Graph" }), h("div", { class: "graph-wrap" }, graph.el),
          h("div", { class: "legend" }, ["pending", "queued", "running", "completed", "failed", "skipped", "cancelled"].map((s) => h("span", { class: `key ${s}` }, s)),
            h("span", { class: "key arc-taken" }, "arc taken"), h("span", { class: "key arc-skipped" }, "arc to a skipped step"), h("span", { class: "key arc-idle" }, "arc not taken"))),
        h("section", { class: "card" }, h("h3", { text: "Timeline" }), timeline.el),
        h("section", { class: "card" }, h("h3", {}, "Events ", eventCount), eventFilter, eventList.el, eventDetail)),
      panel));

  let eventsShown = -1;
  function drawEvents(force) {
    if (!force && eventsShown === run.events.length) return;
    eventsShown = run.events.length;
    const needle = eventFilter.value.trim().toLowerCase();
    const items = needle ? run.events.filter((ev) =>
      `${ev.type} ${ev.node || ""} ${ev.error || ""}`.toLowerCase().includes(needle)) : run.events;
    eventList.set(items);
    eventCount.textContent = `(${run.events.length})`;
  }

  function select(name, command = null) {
    selected = name;
    selectedCommand = command;
    drawPanel();
    graph.update(selected);
  }

  function childrenOf(step) {
    const fromResults = step.commands.map((c) => c.out && c.out.data && c.out.data.execution_id).filter(Boolean);
    const byPath = children.filter((c) => step.commands.some((cmd) => cmd.childPath && cmd.childPath === c.path));
    const ids = new Set(fromResults);
    const out = byPath.map((c) => ({ id: c.execution_id, status: c.status, path: c.path }));
    for (const childId of ids) if (!out.some((c) => c.id === childId)) out.push({ id: childId, status: "", path: "" });
    return out;
  }

  function drawPanel() {
    if (!selected) return;
    const step = run.steps.get(selected);
    if (!step) return;
    const t = run.tally(step);
    const command = selectedCommand || step.commands[step.commands.length - 1] || null;
    const out = command && command.out;
    const err = (command && command.error) || step.error;
    const kids = step.tool === "playbook" ? childrenOf(step) : [];
    panel.replaceChildren(...[
      h("h3", {}, step.name, " ", badge(step.state.toUpperCase())),
      h("dl", { class: "facts-list" },
        h("dt", {}, "tool"), h("dd", {}, step.tool || "—"),
        h("dt", {}, "time"), h("dd", {}, step.first ? `${fmtTime(step.first).slice(11)} · ${fmtMs(ms(step.first, step.last))}` : "—"),
        step.loop ? [h("dt", {}, "iterations"), h("dd", { id: "panel-iterations" }, `${t.completed} done · ${t.failed} failed · ${t.running} running · ${t.queued} queued of ${step.expected ?? step.commands.length}`)] : null,
        command && command.iteration !== undefined ? [h("dt", {}, "iteration"), h("dd", {}, `#${command.iteration}`)] : null,
        command && command.worker ? [h("dt", {}, "worker"), h("dd", {}, command.worker)] : null,
        step.entries > 1 ? [h("dt", {}, "entered"), h("dd", {}, `${step.entries} times`)] : null),
      kids.length ? h("section", { class: "block" }, h("h4", { text: "Sub-playbook runs" }),
        h("ul", { class: "children" }, kids.map((c) => h("li", {}, h("a", { href: `#/executions/${c.id}`, class: "mono child-link" }, c.id), " ", c.status ? badge(c.status) : null)))) : null,
      err ? h("section", { class: "block" }, h("h4", { text: "Error" }), h("pre", { class: "error-text", id: "step-error" }, err)) : null,
      block("stderr", out && out.stderr, "stderr"),
      block("stdout", out && out.stdout, "stdout"),
      block(step.loop && !selectedCommand ? "Result of the last iteration" : "Result", out ? out.data : undefined, "result"),
      step.loopSummary ? block("loop.done", step.loopSummary) : null].filter(Boolean));
  }

  function draw() {
    status.replaceChildren(badge(run.status));
    duration.textContent = fmtMs(ms(run.started || summary.start_time, run.ended));
    error.replaceChildren(...(run.error ? [errorBox(run.error)] : []));
    cancel.disabled = cascade.disabled = !run.running;
    graph.update(selected);
    timeline.draw(children);
    drawEvents(false);
    if (selected) drawPanel();
    el.dataset.status = run.status;
  }

  return {
    draw,
    get hasSubPlaybooks() { return [...run.steps.values()].some((s) => s.tool === "playbook"); },
    connection(state) { live.dataset.state = ["connecting", "open", "closed"][state]; live.title = `event stream ${live.dataset.state}`; },
    async refreshChildren() {
      try {
        const answer = await api(`/ui/api/executions?parent=${id}&page_size=200`);
        children = answer.items.slice().reverse();
        draw();
      } catch { /* the list is a convenience: the run's own view does not depend on it */ }
    },
  };
}
