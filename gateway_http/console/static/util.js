// Small helpers shared by every view: element building, the JSON API, formatting.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const svgNS = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(svgNS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

class ApiError extends Error {}

// JSON in and out; a non-2xx answer throws with the gateway's `detail`.
export async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {} };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = text; }
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? body.detail : body;
    throw new ApiError(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m}m ${Math.round(sec - m * 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const sec = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  if (sec < 60) return `${sec.toFixed(0)} s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  return `${Math.floor(sec / 3600)} h ago`;
}

export function badge(status) {
  const value = (status || "unknown").toLowerCase();
  return h("span", { class: `badge s-${value}`, "data-status": status || "" }, status || "?");
}

function pretty(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

// A block of preformatted text, or nothing when there is nothing to show.
export function block(title, value, cls = "") {
  if (value === undefined || value === null || value === "") return null;
  return h("section", { class: "block" }, h("h4", { text: title }), h("pre", { class: cls }, pretty(value)));
}

export function errorBox(message) {
  return h("div", { class: "error-box", role: "alert" }, message);
}

// Work scheduled once per animation frame however often it is requested (event bursts).
export function frameScheduler(work) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; work(); });
  };
}

// A list that renders only the rows in view: fixed row height, a spacer for the rest.
export class VirtualList {
  constructor({ rowHeight, height, render, className }) {
    this.rowHeight = rowHeight;
    this.render = render;
    this.items = [];
    this.el = h("div", { class: `vlist ${className || ""}`, style: `height:${height}px` });
    this.spacer = h("div", { class: "vspacer" });
    this.rows = h("div", { class: "vrows" });
    this.spacer.append(this.rows);
    this.el.append(this.spacer);
    this.el.addEventListener("scroll", () => this.draw());
    this.drawn = "";
  }
  set(items) {
    this.items = items;
    this.drawn = "";
    this.draw();
  }
  draw() {
    const total = this.items.length;
    this.spacer.style.height = `${total * this.rowHeight}px`;
    const top = this.el.scrollTop;
    const view = this.el.clientHeight || 400;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - 5);
    const last = Math.min(total, Math.ceil((top + view) / this.rowHeight) + 5);
    const key = `${first}:${last}:${total}`;
    if (key === this.drawn) return;
    this.drawn = key;
    this.rows.style.transform = `translateY(${first * this.rowHeight}px)`;
    const out = [];
    for (let i = first; i < last; i++) out.push(this.render(this.items[i], i));
    this.rows.replaceChildren(...out);
  }
}
