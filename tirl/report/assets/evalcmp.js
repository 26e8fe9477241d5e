// Evaluations side by side: the same held-out task at two evaluations (before / after SFT /
// after RL ...), each side with its own sample picker.
"use strict";
TIRL.initEvals = function () {
  const $ = (id) => document.getElementById(id);
  TIRL.fill($("ev-run"), TIRL.runOptions());
  const stages = () => {
    const run = TIRL.data.runs[Number($("ev-run").value)];
    const tags = Object.keys(run.eval_trajectories);
    const label = (tag) => { const s = run.evals.find((e) => e.tag === tag); return s ? s.label : tag; };
    TIRL.fill($("ev-a"), tags.map((t) => [t, label(t)]), true);
    TIRL.fill($("ev-b"), tags.map((t) => [t, label(t)]), true);
    const greedy = tags.filter((t) => !t.endsWith("_t1"));
    if (!tags.includes($("ev-a").dataset.user || "")) $("ev-a").value = (greedy[0] || tags[0] || "");
    if (!tags.includes($("ev-b").dataset.user || "")) $("ev-b").value = (greedy[greedy.length - 1] || tags[tags.length - 1] || "");
    const ids = [];
    for (const list of Object.values(run.eval_trajectories)) for (const t of list) if (!ids.includes(t.task_id)) ids.push(t.task_id);
    TIRL.fill($("ev-task"), ids.map((i) => [i, i]), true);
    TIRL.renderEvalSides();
  };
  $("ev-run").onchange = stages;
  $("ev-a").onchange = () => { $("ev-a").dataset.user = $("ev-a").value; TIRL.renderEvalSides(); };
  $("ev-b").onchange = () => { $("ev-b").dataset.user = $("ev-b").value; TIRL.renderEvalSides(); };
  $("ev-task").onchange = TIRL.renderEvalSides;
  stages();
};

TIRL.renderEvalSides = function () {
  const $ = (id) => document.getElementById(id), el = TIRL.el;
  if (!$("ev-run").options.length) return;
  const run = TIRL.data.runs[Number($("ev-run").value)];
  for (const [side, box] of [["ev-a", $("ev-left")], ["ev-b", $("ev-right")]]) {
    const tag = $(side).value;
    const list = (run.eval_trajectories[tag] || []).filter((t) => t.task_id === $("ev-task").value);
    const stage = run.evals.find((e) => e.tag === tag);
    const title = el("h3", { text: (stage ? stage.label : tag || "no evaluation") + (list.length ? ": " + list.filter((t) => t.correct).length + " of " + list.length + " correct" : "") });
    const pick = el("select", { class: "ev-sample" }, list.map((t, i) => el("option", { value: i, text: "sample " + t.sample })));
    pick.value = String(Math.min(Number(box.dataset.sample || 0), Math.max(list.length - 1, 0)));
    const detail = el("div", {});
    const show = () => { box.dataset.sample = pick.value; TIRL.renderTrajectory(detail, list[Number(pick.value)] || null, run); };
    pick.onchange = show;
    box.replaceChildren(...[title, list.length > 1 ? el("label", {}, "sample ", pick) : null, detail].filter(Boolean));
    show();
  }
};
