// Worker pools: status, capacity and how long ago each last sent a heartbeat.
import { h, api, badge, ago, fmtTime, errorBox } from "./util.js";

const REFRESH_MS = 3000;

export function poolsView() {
  const body = h("tbody");
  const failure = h("div");
  const el = h("div", { class: "page" }, h("div", { class: "toolbar" }, h("h2", { text: "Worker pools" })), failure,
    h("table", { class: "grid", id: "pools" },
      h("thead", {}, h("tr", {}, ["Name", "Status", "Capacity", "Serves", "Runtime", "Heartbeat", "Registered"].map((t) => h("th", { text: t })))), body));
  let items = [];
  const draw = () => {
    const now = Date.now();
    const rows = items.map((p) => {
      const age = p.heartbeat ? (now - new Date(p.heartbeat).getTime()) / 1000 : Infinity;
      const runtime = p.runtime && typeof p.runtime === "object" ? [p.runtime.type, p.runtime.hostname, p.runtime.pid && `pid ${p.runtime.pid}`].filter(Boolean).join(" · ") : "";
      const serves = p.labels && Array.isArray(p.labels.pools) ? p.labels.pools.join(", ") : "";
      return h("tr", { "data-pool": p.name },
        h("td", { class: "mono" }, p.name), h("td", {}, badge((p.status || "").toUpperCase())),
        h("td", { class: "num" }, p.capacity ?? "—"), h("td", {}, serves), h("td", { class: "muted" }, runtime),
        h("td", { class: age > 30 ? "stale" : "", title: fmtTime(p.heartbeat), "data-age": Number.isFinite(age) ? age.toFixed(0) : "" }, ago(p.heartbeat, now)),
        h("td", { class: "mono" }, fmtTime(p.created_at)));
    });
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No worker pool is registered."))]));
  };
  const load = () => api("/api/worker/pools").then((answer) => { items = answer.items || []; failure.replaceChildren(); draw(); })
    .catch((err) => failure.replaceChildren(errorBox(`Cannot list worker pools: ${err.message}`)));
  const timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  const tick = setInterval(draw, 1000);
  return { el, ready: load(), stop: () => { clearInterval(timer); clearInterval(tick); } };
}
