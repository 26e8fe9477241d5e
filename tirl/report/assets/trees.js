// Tree view for ARPO / ELPO / E3-TIR runs: the rollout tree drawn node by node (depth left to
// right, leaves top to bottom), forks ringed, ELPO's critical step (t_crit) in red and its
// error-localised clipping region in amber, leaves coloured by reward; hover shows a node's
// advantages (as trained, and ELPO's branch and trajectory terms), click on a leaf opens it.
"use strict";
TIRL.initTrees = function () {
  const $ = (id) => document.getElementById(id);
  TIRL.fill($("tr-run"), TIRL.runOptions());
  const steps = () => {
    const run = TIRL.data.runs[Number($("tr-run").value)];
    TIRL.fill($("tr-step"), run.steps.filter((s) => s.trees.length).map((s) => [s.step, "step " + s.step]), true);
    tasks();
  };
  const tasks = () => {
    const s = TIRL.currentStep();
    TIRL.fill($("tr-task"), s ? s.trees.map((t) => [t.task_id, t.task_id + " (" + t.strategy + ", " + t.rollouts + " rollouts)"]) : [], true);
    TIRL.renderTree();
  };
  $("tr-run").onchange = steps;
  $("tr-step").onchange = tasks;
  $("tr-task").onchange = TIRL.renderTree;
  steps();
};

TIRL.currentStep = function () {
  const run = TIRL.data.runs[Number(document.getElementById("tr-run").value)];
  return run.steps.find((s) => String(s.step) === document.getElementById("tr-step").value) || null;
};

TIRL.renderTree = function () {
  const $ = (id) => document.getElementById(id), el = TIRL.el, s = TIRL.svg;
  const st = TIRL.currentStep();
  const tree = st ? st.trees.find((t) => t.task_id === $("tr-task").value) : null;
  if (!tree) {
    $("tr-info").replaceChildren();
    $("tr-tip").hidden = true;
    $("tr-canvas").replaceChildren(el("div", { class: "empty", text: "This report embeds no rollout tree (the run saved none: strategy.save_trees)." }));
    return;
  }
  const byId = {}, kids = {};
  tree.nodes.forEach((n) => { byId[n.id] = n; kids[n.id] = []; });
  tree.nodes.forEach((n) => { if (n.parent !== null) kids[n.parent].push(n.id); });
  const root = tree.nodes.find((n) => n.parent === null);
  const pos = {};
  let row = 0;
  const place = (id) => {
    const ch = kids[id];
    if (!ch.length) pos[id] = row++;
    else { ch.forEach(place); pos[id] = (pos[ch[0]] + pos[ch[ch.length - 1]]) / 2; }
  };
  place(root.id);
  const maxDepth = Math.max(...tree.nodes.map((n) => n.depth));
  const DX = 130, DY = 26, L = 30, T = 22;
  const X = (n) => L + n.depth * DX, Y = (n) => T + pos[n.id] * DY;
  const leaves = tree.nodes.filter((n) => n.reward !== null && n.reward !== undefined);
  const lo = Math.min(...leaves.map((n) => n.reward)), hi = Math.max(...leaves.map((n) => n.reward));
  const W = L + maxDepth * DX + 150, H = T + Math.max(row, 1) * DY + 10;
  const g = s("svg", { width: W, height: H, id: "tree-svg" });
  for (let d = 0; d <= maxDepth; d++) g.append(s("text", { x: L + d * DX, y: 12, "text-anchor": "middle", text: d === 0 ? "prompt" : "step " + d }));
  tree.nodes.forEach((n) => {
    if (n.parent === null) return;
    const p = byId[n.parent];
    const mx = (X(p) + X(n)) / 2;
    g.append(s("path", { class: "edge" + (n.widened ? " elc" : ""), d: "M" + X(p) + "," + Y(p) + " C" + mx + "," + Y(p) + " " + mx + "," + Y(n) + " " + X(n) + "," + Y(n) }));
  });
  tree.nodes.forEach((n) => {
    const isLeaf = !kids[n.id].length && n.parent !== null;
    const fill = isLeaf ? TIRL.rewardColor(n.reward, lo, hi) : n.widened ? "#f59e0b" : n.parent === null ? "#9aa3ad" : "#ffffff";
    const grp = s("g", { class: "node" + (isLeaf ? " leaf" : "") + (n.fork ? " fork" : "") + (n.critical ? " critical" : ""), "data-id": n.id,
      onmouseenter: () => TIRL.treeTip(n, tree),
      onclick: () => { if (n.trajectory) TIRL.openTrajectory(n.trajectory); } });
    if (n.fork) grp.append(s("circle", { cx: X(n), cy: Y(n), r: 10, fill: "none", stroke: "#334155", "stroke-width": 1.2 }));
    if (n.critical) grp.append(s("circle", { cx: X(n), cy: Y(n), r: 13, fill: "none", stroke: "#dc2626", "stroke-width": 2.5 }));
    grp.append(n.parent === null ? s("rect", { x: X(n) - 7, y: Y(n) - 7, width: 14, height: 14, fill: fill })
      : s("circle", { cx: X(n), cy: Y(n), r: 6.5, fill: fill, stroke: n.tool_ok === false ? "#b91c1c" : "#475569", "stroke-width": n.tool_ok === false ? 2.2 : 1 }));
    if (isLeaf) grp.append(s("text", { x: X(n) + 12, y: Y(n) + 3.5, text: "#" + n.sample + "  r=" + TIRL.fmt(n.reward, 2) + (n.success === true ? "  ✓" : "") }));
    g.append(grp);
  });
  $("tr-canvas").replaceChildren(g);
  $("tr-tip").hidden = false;
  const crit = tree.critical.map((c) => "sample " + c.sample + ": t_crit " + c.t_crit + " of " + c.k).join("; ");
  $("tr-info").replaceChildren(el("span", {}, el("b", { text: tree.strategy }), " tree of " + tree.task_id + " at step " + tree.step + ": " +
    tree.rollouts + " rollouts, " + leaves.length + " leaves" + (tree.dropped ? ", " + tree.dropped + " dropped (infrastructure)" : "") +
    (crit ? "; critical steps: " + crit : "") + ". Click a leaf to open its trajectory."));
};

TIRL.treeLegend = function () {
  const el = TIRL.el, s = TIRL.svg;
  const icon = (...shapes) => s("svg", { width: 28, height: 28, viewBox: "-14 -14 28 28", style: "vertical-align: middle" }, ...shapes);
  const dot = (fill, stroke, w) => s("circle", { r: 6.5, fill: fill, stroke: stroke || "#475569", "stroke-width": w || 1 });
  const item = (svgIcon, text) => el("span", {}, svgIcon, " " + text);
  document.getElementById("tr-legend").replaceChildren(
    item(icon(dot("hsl(0,70%,45%)")), "leaf, lowest reward"),
    item(icon(dot("hsl(120,70%,45%)")), "leaf, highest reward"),
    item(icon(s("circle", { r: 10, fill: "none", stroke: "#334155", "stroke-width": 1.2 }), dot("#fff")), "fork (several continuations)"),
    item(icon(s("circle", { r: 13, fill: "none", stroke: "#dc2626", "stroke-width": 2.5 }), dot("#fff")), "critical step t_crit (ELPO)"),
    item(icon(dot("#f59e0b")), "error-localised clipping region (ELPO)"),
    item(icon(dot("#fff", "#b91c1c", 2.2)), "its tool call failed"));
};

// the panel beside the tree shows the node under the pointer (it stays until another is hovered)
TIRL.treeTip = function (n, tree) {
  const tip = document.getElementById("tr-tip"), el = TIRL.el;
  const rows = [el("b", { text: "node " + n.id + (n.parent === null ? " (prompt)" : " · step " + n.depth) }), "\n"];
  const add = (k, v) => { if (v !== null && v !== undefined) rows.push(k + ": " + (typeof v === "number" && !Number.isInteger(v) ? TIRL.fmt(v, 4) : String(v)) + "\n"); };
  add("advantage (trained)", n.advantage);
  add("branch advantage A_b", n.a_branch);
  add("trajectory advantage A_t", n.a_traj);
  add("lower clip bound", n.clip_low);
  if (n.critical) rows.push("critical step (t_crit)\n");
  if (n.widened) rows.push("in the error-localised clipping region\n");
  if (n.fork) rows.push("fork: " + tree.nodes.filter((m) => m.parent === n.id).length + " continuations\n");
  add("sample", n.sample); add("reward", n.reward); add("stop", n.stop_reason); add("success (BEL)", n.success);
  add("role", n.role); if (n.parent_sample !== null && n.parent_sample !== undefined) add("continues sample " + n.parent_sample + " after step", n.fork_step);
  if (n.text) rows.push("\n" + n.text.slice(0, 400) + "\n");
  if (n.code) rows.push(el("b", { text: "\ncode" }), "\n" + n.code.slice(0, 300) + "\n");
  if (n.output !== null && n.output !== undefined) rows.push(el("b", { text: "\noutput" + (n.tool_ok === false ? " (error)" : "") }), "\n" + n.output + "\n");
  tip.replaceChildren(...rows);
  tip.dataset.node = n.id;
};
