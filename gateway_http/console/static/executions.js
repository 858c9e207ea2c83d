// Executions: a paginated list, filtered by status and path, refreshed live while on screen.
import { h, api, badge, fmtTime, errorBox } from "./util.js";

const STATUSES = ["", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const PAGE_SIZE = 50;
const REFRESH_MS = 2000;

export function executionsView(params) {
  const state = {
    status: (params.get("status") || "").toUpperCase(),
    path: params.get("path") || "",
    page: Math.max(1, Number(params.get("page")) || 1),
  };
  const statusSelect = h("select", { id: "filter-status", "aria-label": "status" },
    STATUSES.map((value) => h("option", { value, selected: value === state.status }, value || "any status")));
  const pathInput = h("input", { id: "filter-path", type: "search", placeholder: "playbook path contains…", value: state.path, "aria-label": "path" });
  const body = h("tbody");
  const info = h("span", { class: "muted", id: "list-info" });
  const prev = h("button", { id: "page-prev", onclick: () => go(state.page - 1) }, "‹ Newer");
  const next = h("button", { id: "page-next", onclick: () => go(state.page + 1) }, "Older ›");
  const live = h("label", { class: "live" }, h("input", { type: "checkbox", id: "live", checked: true }), " live");
  const failure = h("div");
  const table = h("table", { class: "grid", id: "executions" },
    h("thead", {}, h("tr", {}, ["Execution", "Playbook", "Status", "Started", "Duration", "Error"].map((t) => h("th", { text: t })))),
    body);
  const el = h("div", { class: "page" },
    h("div", { class: "toolbar" }, h("h2", { text: "Executions" }), statusSelect, pathInput, live, h("span", { class: "grow" }), info, prev, next),
    failure, table);

  let timer = null;
  let typing = null;
  let generation = 0;

  function syncUrl() {
    const q = new URLSearchParams();
    if (state.status) q.set("status", state.status);
    if (state.path) q.set("path", state.path);
    if (state.page > 1) q.set("page", String(state.page));
    const hash = `#/executions${q.toString() ? "?" + q : ""}`;
    history.replaceState(null, "", hash);
  }

  function go(page) {
    state.page = Math.max(1, page);
    syncUrl();
    load();
  }

  async function load() {
    const mine = ++generation;
    const q = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE) });
    if (state.status) q.set("status", state.status);
    if (state.path) q.set("path", state.path);
    try {
      const answer = await api(`/ui/api/executions?${q}`);
      if (mine !== generation) return;
      failure.replaceChildren();
      draw(answer);
    } catch (err) {
      if (mine === generation) failure.replaceChildren(errorBox(`Cannot list executions: ${err.message}`));
    }
  }

  function draw(answer) {
    const rows = answer.items.map((e) => h("tr", { "data-id": e.execution_id, "data-status": e.status },
      h("td", {}, h("a", { href: `#/executions/${e.execution_id}`, class: "mono" }, e.execution_id),
        e.parent_execution_id ? h("a", { class: "parent", href: `#/executions/${e.parent_execution_id}`, title: "parent execution" }, " ↰") : null),
      h("td", {}, h("a", { href: `#/catalog/${encodeURIComponent(e.path)}` }, e.path), h("span", { class: "muted" }, ` v${e.version}`)),
      h("td", {}, badge(e.status)),
      h("td", { class: "mono" }, fmtTime(e.start_time)),
      h("td", { class: "num" }, e.duration_human || ""),
      h("td", { class: "err", title: e.error || "" }, e.error ? e.error.slice(0, 80) : "")));
    body.replaceChildren(...rows);
    if (!rows.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No executions match.")));
    const first = (answer.page - 1) * answer.page_size + 1;
    const shown = answer.items.length ? `${first}–${first + answer.items.length - 1}` : "0";
    const of = answer.matched !== null ? ` of ${answer.matched} matching (newest ${answer.scanned} scanned)` : "";
    info.textContent = `page ${answer.page} · ${shown}${of}`;
    prev.disabled = answer.page <= 1;
    next.disabled = !answer.has_next;
  }

  statusSelect.addEventListener("change", () => { state.status = statusSelect.value; go(1); });
  pathInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.path = pathInput.value.trim(); go(1); }, 250);
  });
  // A filtered page is a scan in the gateway (listing.py): refreshed half as often.
  let ticks = 0;
  timer = setInterval(() => {
    ticks += 1;
    const filtered = state.status || state.path;
    if (filtered && ticks % 2) return;
    if (!document.hidden && el.querySelector("#live").checked) load();
  }, REFRESH_MS);

  return { el, ready: load(), stop: () => { clearInterval(timer); clearTimeout(typing); generation++; } };
}
