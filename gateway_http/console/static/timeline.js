// The timeline: one row per step that ran, bars on one time scale from the run's start.
// A loop's row opens into its iterations (a virtual list: 2,000 rows cost what 20 do);
// a sub-playbook's row links to the child runs.
import { h, fmtMs, VirtualList } from "./util.js";
import { ms } from "./run.js";

const ITERATION_ROW = 22;

export class Timeline {
  constructor(run, onSelect) {
    this.run = run;
    this.onSelect = onSelect;
    this.open = new Set();
    this.lists = new Map();
    this.el = h("div", { class: "timeline", id: "timeline" });
  }

  scale() {
    const start = this.run.started ? new Date(this.run.started).getTime() : Date.now();
    const end = this.run.ended ? new Date(this.run.ended).getTime() : Date.now();
    const span = Math.max(1, end - start);
    return (from, to) => {
      const a = from ? new Date(from).getTime() : end;
      const b = to ? new Date(to).getTime() : end;
      const left = Math.min(100, Math.max(0, ((a - start) / span) * 100));
      const width = Math.max(0.4, Math.min(100 - left, ((b - a) / span) * 100));
      return `left:${left.toFixed(2)}%;width:${width.toFixed(2)}%`;
    };
  }

  draw(children) {
    const at = this.scale();
    const steps = [...this.run.steps.values()].filter((s) => s.first).sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
    const rows = [];
    for (const step of steps) {
      const isLoop = step.loop || step.commands.some((c) => c.iteration !== undefined);
      const toggle = isLoop ? h("button", { class: "toggle", "data-toggle": step.name, onclick: () => {
        if (this.open.has(step.name)) this.open.delete(step.name); else this.open.add(step.name);
        this.draw(children);
      } }, `${this.open.has(step.name) ? "▾" : "▸"} ${step.commands.length} iterations`) : null;
      const kids = step.tool === "playbook" ? children.filter((c) => step.commands.some((cmd) => cmd.childPath === c.path)) : [];
      rows.push(h("div", { class: `trow ${step.state}`, "data-step": step.name },
        h("span", { class: "tname", onclick: () => this.onSelect(step.name) }, step.name),
        h("span", { class: "ttrack", onclick: () => this.onSelect(step.name) }, h("span", { class: `tbar ${step.state}`, style: at(step.first, step.last) })),
        h("span", { class: "tdur" }, fmtMs(ms(step.first, step.last))),
        h("span", { class: "textra" }, toggle,
          kids.length ? h("span", { class: "kids" }, "↳ ", kids.slice(0, 3).map((c) => h("a", { href: `#/executions/${c.execution_id}`, class: "child-link mono" }, c.execution_id.slice(-6))), kids.length > 3 ? ` +${kids.length - 3}` : "") : null)));
      if (isLoop && this.open.has(step.name)) rows.push(this.iterations(step, at));
    }
    if (!rows.length) rows.push(h("p", { class: "muted" }, "Nothing has run yet."));
    // Moving a scrolled list out of the document and back loses its position: keep it.
    const scrolled = [...this.lists.values()].map((list) => [list, list.el.scrollTop]);
    this.el.replaceChildren(...rows);
    for (const [list, top] of scrolled) if (list.el.isConnected && list.el.scrollTop !== top) { list.el.scrollTop = top; list.draw(); }
  }

  iterations(step, at) {
    let list = this.lists.get(step.name);
    if (!list) {
      list = new VirtualList({ rowHeight: ITERATION_ROW, height: 0, className: "iterations", render: (command) =>
        h("div", { class: `irow ${command.state}`, "data-iteration": command.iteration ?? "", onclick: () => this.onSelect(step.name, command) },
          h("span", { class: "mono" }, command.iteration !== undefined ? `#${command.iteration}` : "·"),
          h("span", { class: "istate" }, command.state),
          h("span", { class: "ttrack" }, h("span", { class: `tbar ${command.state}`, style: this.at(command.start || command.issued, command.end) })),
          h("span", { class: "tdur" }, fmtMs(ms(command.start || command.issued, command.end)))) });
      this.lists.set(step.name, list);
    }
    this.at = at;
    const ordered = step.commands.slice().sort((a, b) => (a.iteration ?? 0) - (b.iteration ?? 0));
    list.el.style.height = `${Math.min(ordered.length, 12) * ITERATION_ROW + 2}px`;
    list.set(ordered);
    return list.el;
  }
}
