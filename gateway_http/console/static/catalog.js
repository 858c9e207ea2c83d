// The catalog: playbooks with their versions, one playbook's YAML, and a run form made from
// `GET /api/catalog/{path}/ui_schema` (JSON Schema of the workload).
import { h, api, fmtTime, errorBox } from "./util.js";

export function catalogView() {
  const filter = h("input", { type: "search", placeholder: "filter by path…", id: "catalog-filter" });
  const body = h("tbody");
  const el = h("div", { class: "page" },
    h("div", { class: "toolbar" }, h("h2", { text: "Catalog" }), filter),
    h("table", { class: "grid", id: "catalog" },
      h("thead", {}, h("tr", {}, ["Playbook", "Latest", "Versions", "Registered", "Description"].map((t) => h("th", { text: t })))), body));
  let groups = [];
  const draw = () => {
    const needle = filter.value.trim().toLowerCase();
    const rows = groups.filter((g) => g.path.toLowerCase().includes(needle)).map((g) =>
      h("tr", { "data-path": g.path },
        h("td", {}, h("a", { href: `#/catalog/${encodeURIComponent(g.path)}` }, g.path)),
        h("td", { class: "num" }, `v${g.latest.version}`),
        h("td", { class: "num" }, String(g.versions)),
        h("td", { class: "mono" }, fmtTime(g.latest.created_at)),
        h("td", { class: "muted" }, description(g.latest))));
    body.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No playbooks registered."))]));
  };
  filter.addEventListener("input", draw);
  const ready = api("/api/catalog/list", { method: "POST", body: { resource_type: "playbook" } }).then((answer) => {
    const byPath = new Map();
    for (const entry of answer.entries) {
      const group = byPath.get(entry.path);
      if (!group) byPath.set(entry.path, { path: entry.path, latest: entry, versions: 1 });
      else { group.versions += 1; if (entry.version > group.latest.version) group.latest = entry; }
    }
    groups = [...byPath.values()].sort((a, b) => a.path.localeCompare(b.path));
    draw();
  }).catch((err) => el.append(errorBox(`Cannot list the catalog: ${err.message}`)));
  return { el, ready };
}

function description(entry) {
  const meta = entry.payload && entry.payload.metadata;
  return (meta && typeof meta.description === "string") ? meta.description : "";
}

export function playbookView(path, params) {
  const el = h("div", { class: "page" }, h("h2", {}, path));
  const ready = (async () => {
    let versions;
    try {
      versions = (await api("/api/catalog/list", { method: "POST", body: { path } })).entries;
    } catch (err) {
      el.append(errorBox(err.message));
      return;
    }
    if (!versions.length) { el.append(errorBox(`No catalog entry at ${path}`)); return; }
    versions.sort((a, b) => b.version - a.version);
    const wanted = Number(params.get("version")) || versions[0].version;
    const entry = versions.find((v) => v.version === wanted) || versions[0];
    const picker = h("select", { id: "version", "aria-label": "version" },
      versions.map((v) => h("option", { value: String(v.version), selected: v.version === entry.version }, `v${v.version} · ${fmtTime(v.created_at)}`)));
    picker.addEventListener("change", () => { location.hash = `#/catalog/${encodeURIComponent(path)}?version=${picker.value}`; });
    const form = h("div", { class: "card run-form" }, h("p", { class: "muted" }, "Loading the form…"));
    el.append(
      h("div", { class: "toolbar" }, h("span", {}, "version "), picker,
        h("a", { href: `#/executions?path=${encodeURIComponent(path)}` }, "runs of this playbook")),
      h("div", { class: "split" }, form, h("section", { class: "card yaml" }, h("h3", { text: "YAML" }), h("pre", { id: "yaml" }, entry.content))));
    try {
      const schema = await api(`/api/catalog/${path.split("/").map(encodeURIComponent).join("/")}/ui_schema?version=${entry.version}`);
      form.replaceChildren(...runForm(path, entry.version, schema.ui_schema).filter(Boolean));
    } catch (err) {
      form.replaceChildren(errorBox(`No form: ${err.message}`));
    }
  })();
  return { el, ready };
}

// One input per workload key; scalars get typed inputs, anything else JSON in a text area.
function runForm(path, version, schema) {
  const fields = [];
  const properties = (schema && schema.properties) || {};
  for (const [name, prop] of Object.entries(properties)) {
    const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") || "string" : prop.type;
    let input;
    if (type === "boolean") input = h("input", { type: "checkbox", checked: !!prop.default });
    else if (type === "integer" || type === "number") input = h("input", { type: "number", step: type === "integer" ? "1" : "any", value: prop.default ?? "" });
    else if (type === "string") input = h("input", { type: "text", value: prop.default ?? "" });
    else input = h("textarea", { rows: 3, class: "mono" }, JSON.stringify(prop.default ?? null));
    input.name = name;
    input.id = `field-${name}`;
    fields.push({ name, type, input, nullable: Array.isArray(prop.type) && prop.type.includes("null") });
  }
  const problem = h("div", { id: "form-problem" });
  const submit = h("button", { type: "submit", class: "primary", id: "run-submit" }, "Run");
  const form = h("form", { id: "run-form", onsubmit: async (e) => {
    e.preventDefault();
    problem.replaceChildren();
    let workload;
    try { workload = collect(fields); } catch (err) { problem.append(errorBox(err.message)); return; }
    submit.disabled = true;
    try {
      const started = await api("/api/execute", { method: "POST", body: { path, version, workload } });
      location.hash = `#/executions/${started.execution_id}`;
    } catch (err) {
      problem.append(errorBox(`Not started: ${err.message}`));
    } finally { submit.disabled = false; }
  } },
  fields.map((f) => h("label", { class: "field" }, h("span", {}, f.name, h("small", { class: "muted" }, ` ${f.type}`)), f.input)),
  fields.length ? null : h("p", { class: "muted" }, "This playbook has no workload to set."),
  h("div", { class: "actions" }, submit), problem);
  return [h("h3", {}, schema && schema.title ? `Run ${schema.title}` : "Run"), schema && schema.description ? h("p", { class: "muted" }, schema.description) : null, form];
}

function collect(fields) {
  const workload = {};
  for (const f of fields) {
    const raw = f.input.value;
    if (f.type === "boolean") workload[f.name] = f.input.checked;
    else if (f.type === "integer" || f.type === "number") {
      if (raw === "" && f.nullable) workload[f.name] = null;
      else if (raw === "" || Number.isNaN(Number(raw))) throw new Error(`${f.name} must be a number`);
      else workload[f.name] = Number(raw);
    } else if (f.type === "string") workload[f.name] = raw;
    else {
      try { workload[f.name] = JSON.parse(raw); } catch { throw new Error(`${f.name} is not valid JSON`); }
    }
  }
  return workload;
}
