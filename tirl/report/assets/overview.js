// Overview: each run's config (collapsible), the evaluation table and the learning curves.
"use strict";
TIRL.CURVES = [
  ["reward/mean", "mean reward"],
  ["reward/accuracy", "train accuracy"],
  ["eval/accuracy", "held-out accuracy"],
  ["rollout/tool_calls", "tool calls / trajectory"],
  ["policy/entropy", "entropy"],
  ["loss/kl", "KL to the reference"],
  ["policy/clip_frac", "clip fraction"],
  ["rollout/policy_tokens", "response length (policy tokens)"],
  ["time/step_s", "step time (s)"],
];
TIRL.EVAL_ROWS = [
  ["accuracy", "accuracy"], ["mean_score", "mean score"], ["pass@", "pass@k"], ["maj@", "maj@k"],
  ["format_ok", "format ok"], ["mean_reward", "mean reward"], ["tool_calls_per_task", "tool calls / task"],
  ["tool_use_rate", "tool-use rate"], ["tool_success_rate", "tool success rate"], ["mean_turns", "turns / trajectory"],
  ["mean_policy_tokens", "response tokens"], ["void_turn_rate", "void-turn rate"], ["efficiency", "efficiency (ET-Agent)"],
  ["infra_errors", "infra errors (dropped)"], ["n_tasks", "tasks"], ["n_samples", "samples / task"],
];

// decimals per evaluation metric (counts print whole, rates with 3)
TIRL.DIGITS = { infra_errors: 0, n_tasks: 0, n_samples: 0, mean_policy_tokens: 1, mean_turns: 2, tool_calls_per_task: 2 };

TIRL.renderOverview = function () {
  const el = TIRL.el, runs = TIRL.data.runs;
  document.getElementById("configs").replaceChildren(...runs.map((r) =>
    el("details", { class: "config" }, el("summary", { text: "config.yaml of " + r.name }), el("pre", { text: r.config_yaml }))));
  // evaluation tables: one per run, a column per evaluation
  const box = document.getElementById("eval-table");
  box.replaceChildren();
  runs.forEach((r, ri) => {
    if (runs.length > 1) box.append(el("h3", { text: r.name }));
    if (!r.evals.length) { box.append(el("div", { class: "empty", text: "No evaluation was logged." })); return; }
    const keys = [];
    for (const [prefix, label] of TIRL.EVAL_ROWS) {
      const found = new Set();
      r.evals.forEach((s) => Object.keys(s.scalars).forEach((k) => { if (prefix.endsWith("@") ? k.startsWith(prefix) : k === prefix) found.add(k); }));
      [...found].sort((a, b) => (parseInt(a.split("@")[1]) || 0) - (parseInt(b.split("@")[1]) || 0))
        .forEach((k) => keys.push([k, prefix.endsWith("@") ? k : label]));
    }
    const head = el("tr", {}, el("th", { text: "metric" }), r.evals.map((s) => el("th", { text: s.label, title: "step " + s.step })));
    const body = keys.map(([k, label]) => el("tr", {}, el("td", { text: label }),
      r.evals.map((s) => el("td", { text: TIRL.fmt(s.scalars[k], TIRL.DIGITS[k] === undefined ? 3 : TIRL.DIGITS[k]) }))));
    box.append(el("table", { class: "evals", id: "eval-tbl-" + ri }, el("thead", {}, head), el("tbody", {}, body)));
  });
  // curves
  const extra = document.getElementById("curve-extra");
  const all = new Set();
  runs.forEach((r) => Object.keys(r.metrics).forEach((k) => all.add(k)));
  TIRL.fill(extra, [["", "(any logged metric)"]].concat([...all].sort().map((k) => [k, k])));
  extra.onchange = () => { if (extra.value) TIRL.addCurve(extra.value, extra.value, true); };
  const grid = document.getElementById("curves");
  grid.replaceChildren();
  if (runs.length > 1) {
    grid.before(el("div", { class: "legend" }, runs.map((r, i) =>
      el("span", {}, el("span", { class: "sw", style: "background:" + TIRL.COLORS[i % 8] }), r.name))));
  }
  for (const [k, label] of TIRL.CURVES) if (runs.some((r) => r.metrics[k])) TIRL.addCurve(k, label, false);
};

TIRL.addCurve = function (key, label, first) {
  const el = TIRL.el, s = TIRL.svg, runs = TIRL.data.runs;
  const series = runs.map((r, i) => [i, r.metrics[key] || []]).filter(([, p]) => p.length);
  const W = 300, H = 150, L = 42, R = 8, T = 8, B = 20;
  const pts = series.flatMap(([, p]) => p);
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= 0.5 * (Math.abs(y0) || 1); y1 += 0.5 * (Math.abs(y1) || 1); }
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  const g = s("svg", { viewBox: "0 0 " + W + " " + H, "data-key": key },
    s("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    s("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    s("text", { x: L - 4, y: T + 8, "text-anchor": "end", text: TIRL.fmtRange(y1, y0, y1) }),
    s("text", { x: L - 4, y: H - B, "text-anchor": "end", text: TIRL.fmtRange(y0, y0, y1) }),
    s("text", { x: L, y: H - 6, text: "step " + x0 }),
    s("text", { x: W - R, y: H - 6, "text-anchor": "end", text: String(x1) }));
  for (const [i, p] of series) {
    const c = TIRL.COLORS[i % 8];
    g.append(s("polyline", { fill: "none", stroke: c, "stroke-width": 1.6, points: p.map((q) => X(q[0]) + "," + Y(q[1])).join(" ") }));
    if (p.length <= 60) for (const q of p) g.append(s("circle", { cx: X(q[0]), cy: Y(q[1]), r: 2.2, fill: c },
      s("title", { text: runs[i].name + " step " + q[0] + ": " + TIRL.fmt(q[1], 4) })));
  }
  const card = el("div", { class: "curve" }, el("h4", { text: label, title: key }), g);
  const grid = document.getElementById("curves");
  if (first) grid.prepend(card); else grid.append(card);
};
