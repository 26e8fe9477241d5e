// Trajectory browser: pick a run, a step and a task; filter (wrong, tool errors, truncated) and
// search; the list picks the sample, the detail shows it.
"use strict";
TIRL.browser = { key: null };

TIRL.initBrowser = function () {
  const $ = (id) => document.getElementById(id);
  TIRL.fill($("tb-run"), TIRL.runOptions());
  const steps = () => {
    const run = TIRL.data.runs[Number($("tb-run").value)];
    TIRL.fill($("tb-step"), [["all", "all steps"]].concat(run.steps.map((s) => [s.step, "step " + s.step + " (" + s.trajectories.length + ")"])), true);
    tasks();
  };
  const tasks = () => {
    const run = TIRL.data.runs[Number($("tb-run").value)];
    const ids = new Set();
    run.steps.filter((s) => $("tb-step").value === "all" || String(s.step) === $("tb-step").value)
      .forEach((s) => s.trajectories.forEach((t) => ids.add(t.task_id)));
    TIRL.fill($("tb-task"), [["all", "all tasks"]].concat([...ids].map((i) => [i, i])), true);
    TIRL.renderList();
  };
  $("tb-run").onchange = steps;
  $("tb-step").onchange = tasks;
  for (const id of ["tb-task", "tb-wrong", "tb-toolerr", "tb-trunc"]) $(id).onchange = TIRL.renderList;
  $("tb-search").oninput = TIRL.renderList;
  for (const r of document.querySelectorAll("input[name=heat]")) {
    r.onchange = () => { TIRL.heat = r.value; TIRL.heatLegend(); TIRL.renderSelected(); TIRL.renderEvalSides(); };
  }
  steps();
};

TIRL.heatLegend = function () {
  const el = TIRL.el, h = TIRL.heat, box = document.getElementById("heat-legend");
  if (h === "none") { box.replaceChildren(); return; }
  const stops = h === "logprob" ? [[0, "p = 1"], [-69, "p = 0.5"], [-230, "p = 0.1"], [-460, "p = 0.01"]]
    : [[0, "0"], [100, "1 nat"], [200, "2"], [300, "≥ 3 nats"]];
  box.replaceChildren(...stops.map(([v, label]) => el("span", { class: "heat-stop", style: "background:" + TIRL.heatColor(h, v), text: label })));
};

TIRL.matches = function (t) {
  const $ = (id) => document.getElementById(id);
  if ($("tb-wrong").checked && t.correct !== false) return false;
  if ($("tb-toolerr").checked && !t.tool_error) return false;
  if ($("tb-trunc").checked && !t.truncated) return false;
  const q = $("tb-search").value.trim().toLowerCase();
  if (q) {
    const hay = [t.task_id, t.answer || "", t.gold, t.text].concat(t.calls.map((c) => c.code + "\n" + c.output)).join("\n").toLowerCase();
    if (!hay.includes(q)) return false;
  }
  return true;
};

TIRL.renderList = function () {
  const $ = (id) => document.getElementById(id), el = TIRL.el;
  const run = TIRL.data.runs[Number($("tb-run").value)];
  const step = $("tb-step").value, task = $("tb-task").value;
  const shown = [];
  for (const s of run.steps) {
    if (step !== "all" && String(s.step) !== step) continue;
    for (const t of s.trajectories) if ((task === "all" || t.task_id === task) && TIRL.matches(t)) shown.push(t);
  }
  const items = shown.map((t) => el("div", { class: "item" + (t.key === TIRL.browser.key ? " sel" : ""), "data-key": t.key,
    onclick: () => { TIRL.browser.key = t.key; TIRL.renderList(); } },
  "step " + t.step + " · " + t.task_id + " · #" + t.sample,
  t.correct === true ? TIRL.badge("✓", "good") : t.correct === false ? TIRL.badge("✗", "bad") : null,
  t.tool_error ? TIRL.badge("tool error", "bad") : null, t.truncated ? TIRL.badge("truncated", "warn") : null,
  TIRL.badge(TIRL.fmt(t.reward, 2))));
  $("tb-list").replaceChildren(el("div", { class: "count", id: "tb-count", text: shown.length + " trajectories" }), ...items);
  if (!shown.some((t) => t.key === TIRL.browser.key)) TIRL.browser.key = shown.length ? shown[0].key : null;
  const sel = $("tb-list").querySelector('[data-key="' + CSS.escape(TIRL.browser.key || "") + '"]');
  if (sel) sel.classList.add("sel");
  TIRL.renderSelected();
};

TIRL.renderSelected = function () {
  const key = TIRL.browser.key;
  const t = key ? TIRL.findTrajectory(key) : null;
  TIRL.renderTrajectory(document.getElementById("tb-detail"), t, t ? TIRL.data.runs[Number(key.split("/")[0])] : null);
};

// open one trajectory in the browser (from a tree leaf): select its run, step and task
TIRL.openTrajectory = function (key) {
  const $ = (id) => document.getElementById(id);
  const [run, , step, ...rest] = key.split("/");
  const task = rest.slice(0, -1).join("/");
  for (const id of ["tb-wrong", "tb-toolerr", "tb-trunc"]) $(id).checked = false;
  $("tb-search").value = "";
  $("tb-run").value = run; $("tb-run").onchange();
  $("tb-step").value = step; $("tb-step").onchange();
  $("tb-task").value = task;
  TIRL.browser.key = key;
  TIRL.renderList();
  TIRL.showTab("trajectories");
};
