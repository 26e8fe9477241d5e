// Start: the header (each run's label, status and what the report embeds), then every tab.
"use strict";
(function () {
  const el = TIRL.el, d = TIRL.data;
  document.getElementById("title").textContent = d.title;
  document.getElementById("runs-head").replaceChildren(...d.runs.map((r, i) => el("div", { class: "run-head" },
    d.runs.length > 1 ? el("span", { class: "sw", style: "display:inline-block;width:10px;height:10px;margin-right:5px;background:" + TIRL.COLORS[i % 8] }) : null,
    el("b", { text: r.name }), " · " + r.label + " · " + r.status + " · " + r.path,
    el("div", { class: "sample-note", text: r.sample_note }),
    r.notes.map((n) => el("div", { class: "note", text: n })))),
  el("div", { class: "sample-note", text: "generated " + d.generated }));
  for (const b of document.querySelectorAll("#tabs button")) b.onclick = () => TIRL.showTab(b.dataset.tab);
  TIRL.renderOverview();
  TIRL.initBrowser();
  TIRL.initTrees();
  TIRL.treeLegend();
  TIRL.initEvals();
  const m = /^#traj=(.+)$/.exec(location.hash);
  if (m && TIRL.findTrajectory(decodeURIComponent(m[1]))) TIRL.openTrajectory(decodeURIComponent(m[1]));
  document.body.dataset.ready = "1";
})();
