// The console's router: the URL fragment picks a view; each view returns its own clean-up.
import { h, errorBox } from "./util.js";
import { executionsView } from "./executions.js";
import { executionView } from "./execution.js";
import { catalogView, playbookView } from "./catalog.js";
import { poolsView } from "./pools.js";

const routes = [
  [/^#\/executions\/(\d+)$/, (m) => executionView(m[1]), "executions"],
  [/^#\/executions\/?(\?.*)?$/, (m) => executionsView(new URLSearchParams((m[1] || "").slice(1))), "executions"],
  [/^#\/catalog\/?$/, () => catalogView(), "catalog"],
  [/^#\/catalog\/(.+?)(\?.*)?$/, (m) => playbookView(decodeURIComponent(m[1]), new URLSearchParams((m[2] || "").slice(1))), "catalog"],
  [/^#\/pools\/?$/, () => poolsView(), "pools"],
];

let cleanup = null;

function route() {
  const hash = location.hash || "#/executions";
  if (cleanup) cleanup();
  cleanup = null;
  const view = document.getElementById("view");
  const started = performance.now();
  for (const [pattern, make, nav] of routes) {
    const match = hash.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", link.dataset.nav === nav);
    }
    const mounted = make(match);
    view.replaceChildren(mounted.el);
    cleanup = mounted.stop || null;
    // Page-load figures for the tests and the curious: time from route to first data drawn.
    Promise.resolve(mounted.ready).then(() => {
      view.dataset.readyMs = (performance.now() - started).toFixed(1);
      view.dataset.route = hash;
    });
    return;
  }
  view.replaceChildren(errorBox(`No page at ${hash}`), h("p", {}, h("a", { href: "#/executions" }, "Executions")));
}

window.addEventListener("hashchange", route);
route();
