// One trajectory, turn by turn: segments coloured by origin, trained tokens underlined and masked
// ones greyed, an optional per-token heat map (behaviour log-prob or entropy), each tool call with
// its code, state and latency, the reward components and the advantages it was trained with.
"use strict";
TIRL.heat = "none";

TIRL.heatColor = function (kind, v) {
  // log-prob (x100): probability 1 white, probability 0 red; entropy (x100): 0 white, >= 3 nats violet
  if (kind === "logprob") {
    const p = Math.exp(v / 100);
    return "rgba(220, 38, 38, " + (0.85 * (1 - p)).toFixed(3) + ")";
  }
  const t = Math.min(1, v / 300);
  return "rgba(124, 58, 237, " + (0.75 * t).toFixed(3) + ")";
};

TIRL.segmentTokens = function (seg) {
  const el = TIRL.el, heat = TIRL.heat;
  const values = heat === "logprob" ? seg.logprob : heat === "entropy" ? seg.entropy : null;
  const cls = "tok " + (seg.trained === true ? "trained" : seg.trained === false ? "masked" : "");
  const box = el("div", { class: "toks" });
  const parts = [];
  seg.tokens.forEach((t, i) => {
    const info = [];
    if (seg.logprob) info.push("log-prob " + (seg.logprob[i] / 100).toFixed(2));
    if (seg.entropy) info.push("entropy " + (seg.entropy[i] / 100).toFixed(2));
    const span = el("span", { class: cls, title: info.join(", ") || null, text: t });
    if (values) span.style.background = TIRL.heatColor(heat, values[i]);
    parts.push(span);
  });
  box.append(...parts);
  return box;
};

TIRL.callCard = function (c, open) {
  // the code is in the policy tokens above and the output in the tool tokens below; the card
  // says what happened to the call, and keeps the code and output as the tool saw them
  const el = TIRL.el, bad = !c.ok;
  const state = c.infra_error ? TIRL.badge("infrastructure error", "bad") : c.parse_error ? TIRL.badge("malformed call", "bad")
    : c.timed_out ? TIRL.badge("timeout", "bad") : bad ? TIRL.badge("error", "bad") : TIRL.badge("ok", "good");
  const why = c.parse_error || c.error;
  return el("div", { class: "call" + (bad ? " err" : ""), "data-step": c.step },
    el("div", { class: "call-head" }, el("b", { text: "tool call: " + c.name }), state, TIRL.badge(c.latency_ms.toFixed(1) + " ms"),
      why ? el("span", { class: "why", text: " " + why }) : null),
    el("details", { open: open }, el("summary", { text: "code and output as the tool saw them" }),
      el("pre", { class: "code", text: c.code }), el("pre", { class: "output", text: c.output || "(no output)" })));
};

TIRL.renderTrajectory = function (box, t, run) {
  const el = TIRL.el;
  if (!t) { box.replaceChildren(el("div", { class: "empty", text: "No trajectory selected." })); return; }
  const head = el("div", { class: "meta" },
    el("span", {}, el("b", { text: "task " }), t.task_id),
    el("span", {}, el("b", { text: t.source === "train" ? "step " : "evaluation " }), t.source === "train" ? String(t.step) : t.source),
    el("span", {}, el("b", { text: "sample " }), String(t.sample)),
    el("span", {}, t.correct === true ? TIRL.badge("correct", "good") : t.correct === false ? TIRL.badge("wrong", "bad") : null,
      TIRL.badge("stop: " + (t.stop_reason || "?"), t.truncated ? "warn" : ""), t.tool_error ? TIRL.badge("tool error", "bad") : null),
    el("span", {}, el("b", { text: "answer " }), t.answer === null ? "(none)" : t.answer, el("b", { text: "  gold " }), t.gold),
    el("span", {}, el("b", { text: "reward " }), TIRL.fmt(t.reward),
      " (" + Object.entries(t.rewards).map(([k, v]) => k + " " + TIRL.fmt(v)).join(", ") + ")"),
    t.advantage !== null && t.advantage !== undefined ? el("span", {}, el("b", { text: "advantage " }), TIRL.fmt(t.advantage)) : null);
  const parts = [head];
  if (t.error) parts.push(el("div", { class: "note", text: "error: " + t.error }));
  const prompt = run && run.prompts[t.task_id];
  if (prompt) parts.push(el("details", { class: "prompt" }, el("summary", { text: "prompt" }), el("pre", { text: prompt })));
  const noTokens = t.segments.every((s) => !s.tokens.length);
  if (noTokens) {
    parts.push(el("div", { class: "seg o-policy" }, el("div", { class: "seg-head", text: "completion (no tokenizer: tokens not shown)" }),
      el("div", { class: "toks", text: t.text })));
  }
  const calls = {};
  t.calls.forEach((c) => { calls[c.step] = c; });
  t.segments.forEach((seg, i) => {
    const info = [seg.origin + (seg.step !== null ? ", step " + (seg.step + 1) : ""), seg.tokens.length + " tokens"];
    if (seg.trained === true) info.push("trained");
    else if (seg.trained === false) info.push("masked");
    if (seg.advantage !== null && seg.advantage !== undefined) info.push("advantage " + TIRL.fmt(seg.advantage));
    if (seg.clip_low !== null && seg.clip_low !== undefined) info.push("clip low " + TIRL.fmt(seg.clip_low));
    const head = el("div", { class: "seg-head" }, info.join(" · "),
      seg.critical ? TIRL.badge("critical step (t_crit)", "crit") : null,
      seg.widened ? TIRL.badge("error-localised clipping", "elc") : null);
    if (!noTokens) parts.push(el("div", { class: "seg o-" + seg.origin + (seg.widened ? " widened" : ""), "data-seg": i }, head, TIRL.segmentTokens(seg)));
    const c = calls[seg.step];
    const isAction = seg.origin === "policy" || seg.origin === "expert";
    if (c && isAction) { parts.push(TIRL.callCard(c, noTokens)); delete calls[seg.step]; }
  });
  Object.values(calls).forEach((c) => parts.push(TIRL.callCard(c, true)));
  box.replaceChildren(...parts);
  box.dataset.key = t.key;
};
