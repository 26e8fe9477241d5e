// Shared helpers of the tirl report viewer. Every text from the run (model output, tool output,
// task prompts) goes into the page through textContent, never as HTML.
"use strict";
const TIRL = {};
TIRL.data = JSON.parse(document.getElementById("tirl-data").textContent);
TIRL.COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];

TIRL.el = function (tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
};
TIRL.svg = function (tag, attrs, ...kids) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of kids.flat()) if (c) e.append(c);
  return e;
};
TIRL.fmt = function (v, digits) {
  // digits: decimals of a fractional value (3 by default); whole numbers print without them
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v) && Math.abs(v) < 1e6 && digits === undefined) return String(v);
  if (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0)) return v.toExponential(2);
  return v.toFixed(digits === undefined ? 3 : digits);
};
// axis labels: enough decimals to tell the two ends of a small range apart
TIRL.fmtRange = function (v, lo, hi) {
  const span = Math.abs(hi - lo) || Math.abs(v) || 1;
  const d = Math.min(6, Math.max(0, Math.ceil(-Math.log10(span)) + 2));
  return Math.abs(v) >= 1e5 ? v.toExponential(2) : v.toFixed(d);
};
TIRL.fill = function (select, options, keep) {
  // options: [[value, label], ...]; keeps the current value when it is still offered
  const old = keep ? select.value : null;
  select.replaceChildren(...options.map(([v, l]) => TIRL.el("option", { value: v, text: l })));
  if (old !== null && options.some(([v]) => String(v) === old)) select.value = old;
};
TIRL.badge = function (text, kind, title) {
  return TIRL.el("span", { class: "badge" + (kind ? " " + kind : ""), text: text, title: title });
};
TIRL.runOptions = function () {
  return TIRL.data.runs.map((r, i) => [i, r.name]);
};
TIRL.rewardColor = function (r, lo, hi) {
  // red (lowest) -> amber -> green (highest)
  const t = hi > lo ? Math.min(1, Math.max(0, (r - lo) / (hi - lo))) : 0.5;
  const h = Math.round(t * 120);
  return "hsl(" + h + ", 70%, 45%)";
};
TIRL.tabs = {};
TIRL.showTab = function (name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === "tab-" + name);
  if (TIRL.tabs[name]) TIRL.tabs[name]();
};
// the trajectory with this key, wherever the report embeds it
TIRL.findTrajectory = function (key) {
  const run = TIRL.data.runs[Number(key.split("/")[0])];
  if (!run) return null;
  for (const s of run.steps) for (const t of s.trajectories) if (t.key === key) return t;
  for (const list of Object.values(run.eval_trajectories)) for (const t of list) if (t.key === key) return t;
  return null;
};
