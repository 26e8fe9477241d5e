"""E3-TIR as a trainer strategy (``strategy.name: e3``; ALGORITHMS.md §5, a reconstruction).

``sample`` builds one tree per task as ``tirl.rollout.e3`` describes (self-exploration, expert
anchors chosen by the policy's entropy on the teacher-forced expert trajectory, continuations
from them, the expert trajectory itself); ``credit`` turns the rewarded trees into rows:

- advantages: ``tirl.algo.mixed.hybrid_advantages`` per leaf, ``A = alpha A_global +
  (1 - alpha) A_tree`` (the sub-trees: self-exploration, each anchor's continuations, the expert
  sample alone), every token of a row takes its leaf's value;
- policy tokens take the PPO-clip loss (``algo.loss``); expert tokens never take the ratio: the
  expert-guided row's expert tokens take the off-policy term (``algo.offpolicy_coef``, LUFFY's
  ``p / (p + gamma)``, ``tirl.algo.offpolicy``) with its advantage; an anchor continuation's row
  carries the expert prefix with the continuation's advantage, so those copies would take that
  term too, which is what AAGD (``tirl.algo.mixed.aagd_nodes``) cuts when the continuations of
  the prefix disagree in sign (``detach = 1``);
- zero-variance tasks are dropped (``filter_zero_variance``).

After ``warmup_steps`` the strategy hands sampling and credit to ``after_warmup`` (plain GRPO
groups by default). The trainer calls ``bind(trainer)`` once (E3 reads the live step, the policy
model it teacher-forces with, the run's cost totals and run directory) and ``step_report(trees)``
once per step (E3 metrics, and the expert costs to add to the run's totals: expert samples and
expert tokens obtained, rejected expert trajectories).

The expert set a run obtains is written to ``experts.jsonl`` in the run directory (the rollout
schema; reusable as a file expert or SFT source) and read back on resume, so a resumed run does
not pay for its experts twice.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from tirl.algo.advantages import AdvantageConfig
from tirl.algo.mixed import HybridConfig, aagd_nodes, expert_share, hybrid_advantages
from tirl.config import Config
from tirl.rollout.agent_loop import (
    continue_states,
    prefix_trajectory,
    run_states,
    start_states,
)
from tirl.rollout.e3 import anchor_candidates, boundary_scores, choose_anchors, spread
from tirl.rollout.experts import (
    ExpertSource,
    correct,
    expert_tokens,
    make_expert_source,
)
from tirl.rollout.io import read_jsonl, trajectory_to_json
from tirl.rollout.masks import SFT_ORIGINS, loss_mask
from tirl.rollout.tree import Branch, RolloutTree
from tirl.train.logprobs import token_logprobs
from tirl.train.strategies import STRATEGIES, Credit, _annotate
from tirl.types import StopReason, Task, Trajectory

EXPERT_FILE = "experts.jsonl"


class E3Strategy:
    name = "e3"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        e = cfg.strategy.e3
        self.e3 = e
        n_cont = e.anchors * e.branches if e.branching else 0
        if cfg.rollout.group_size - n_cont < 1:
            raise ValueError(
                f"strategy e3: rollout.group_size ({cfg.rollout.group_size}) must exceed anchors * branches ({e.anchors} * {e.branches}): "
                "the self-exploration samples that measure the pass rate come out of the same budget"
            )
        self.after = STRATEGIES[e.after_warmup](cfg)
        self.trainer: Any = None
        self.source: ExpertSource | None = None
        self.cache: dict[str, Trajectory | None] = {}  # task id -> accepted expert trajectory (None: rejected)
        self._cache_ready = False
        self._costs: Counter = Counter()
        self._stats: dict[str, float] = {}

    # -- wiring -----------------------------------------------------------------------------
    def bind(self, trainer) -> None:
        """The trainer (``policy.model``, ``progress.step``, ``totals``, ``run_dir``, ``cfg``)."""
        self.trainer = trainer

    def _step(self) -> int:
        return self.trainer.progress.step if self.trainer is not None else 0

    def _expert_file(self) -> Path | None:
        return Path(self.trainer.run_dir) / EXPERT_FILE if self.trainer is not None and getattr(self.trainer, "run_dir", None) else None

    def _ready_cache(self) -> None:
        if self._cache_ready:
            return
        self._cache_ready = True
        path = self._expert_file()
        if path is None or not path.exists():
            return
        if self._step() > 0:  # a resumed run: its experts were paid for already
            for tr in read_jsonl(path):
                self.cache[tr.task_id] = tr
        else:
            path.unlink()

    def _persist(self, trajs: list[Trajectory]) -> None:
        path = self._expert_file()
        if path is None or not trajs:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            for tr in trajs:
                f.write(json.dumps(trajectory_to_json(tr)) + "\n")

    async def aclose(self) -> None:
        if self.source is not None:
            await self.source.aclose()

    # -- experts ----------------------------------------------------------------------------
    def _obtained(self) -> int:
        past = int(self.trainer.totals.get("expert_samples", 0)) if self.trainer is not None else 0
        return past + self._costs["expert_samples"]

    async def experts_for(self, tasks: Sequence[Task], engine, protocol, rcfg) -> dict[str, Trajectory | None]:
        """Each task's accepted expert trajectory (obtained once per task, within the limit)."""
        self._ready_cache()
        e = self.e3
        need, seen = [], set()
        for t in tasks:
            if t.id not in self.cache and t.id not in seen:
                need.append(t)
                seen.add(t.id)
        if e.max_expert_samples:
            need = need[: max(0, e.max_expert_samples - self._obtained())]
        if need:
            if self.source is None:
                self.source = make_expert_source(
                    e.expert, rollout=rcfg.model_copy(update={"temperature": e.expert_temperature}), policy_engine=engine,
                    endpoints=self.cfg.endpoint, seed=self.cfg.train.seed, correct_only=e.correct_only,
                )
            got = await self.source.solve(need, protocol, engine.tokenizer)
            accepted = []
            for task, tr in zip(need, got):
                if tr is None:  # the source has nothing for this task: nothing spent
                    self._costs["expert_missing"] += 1
                    self.cache[task.id] = None
                    continue
                self._costs["expert_samples"] += 1
                self._costs["expert_tokens"] += expert_tokens(tr)
                if e.correct_only and not correct(task, tr):
                    self._costs["expert_rejected"] += 1
                    self.cache[task.id] = None
                    continue
                self.cache[task.id] = tr
                accepted.append(tr)
            self._persist(accepted)
        return {t.id: self.cache.get(t.id) for t in tasks}

    def anchor_scores(self, experts: Sequence[Trajectory]) -> list[list[tuple[int, float]]]:
        """Teacher-force each expert trajectory through the current policy; per candidate
        boundary, ``(n_steps, entropy score)``."""
        if self.trainer is None:
            raise RuntimeError("strategy e3 needs bind(trainer) before sampling: anchors are scored by the policy model")
        model = self.trainer.policy.model
        optim = self.trainer.cfg.optim
        pad = self.trainer.tokenizer.pad_token_id
        out: list[list[tuple[int, float]]] = []
        with torch.no_grad():
            for i in range(0, len(experts), optim.micro_batch_size):
                chunk = experts[i : i + optim.micro_batch_size]
                cands = [anchor_candidates(tr) for tr in chunk]
                ids = [tr.token_ids for tr in chunk]
                T = max(len(x) for x in ids)
                ids_BT = torch.full((len(ids), T), pad, dtype=torch.long)
                attn_BT = torch.zeros((len(ids), T), dtype=torch.long)
                for b, x in enumerate(ids):
                    ids_BT[b, : len(x)] = torch.tensor(x)
                    attn_BT[b, : len(x)] = 1
                first = min((s for c in cands for _, s in c), default=T)
                if first >= T:
                    out += [[] for _ in chunk]
                    continue
                _, ent_BT = token_logprobs(model, ids_BT, attn_BT, with_entropy=True, bf16=optim.bf16, first=first)
                for b, c in enumerate(cands):
                    scores = boundary_scores(ent_BT[b].tolist(), [s for _, s in c], self.e3.entropy_window, len(ids[b]))
                    out.append([(n, sc) for (n, _), sc in zip(c, scores)])
        return out

    # -- sampling ---------------------------------------------------------------------------
    async def sample(self, engine, protocol, tasks: Sequence[Task], rcfg, rng: random.Random) -> list[RolloutTree]:
        e = self.e3
        step = self._step()
        if step >= e.warmup_steps:
            self._stats = {"e3/phase": 0.0}
            return await self.after.sample(engine, protocol, tasks, rcfg, rng)
        share = expert_share(step, e.warmup_steps, e.share_start, e.share_schedule)
        tok = engine.tokenizer
        B = rcfg.group_size
        n_cont = e.anchors * e.branches if e.branching else 0
        n_self = B - n_cont

        # 1. self-exploration; its pass rate gates expert use
        first = start_states(protocol, tok, tasks, n_self)
        await run_states(engine, protocol, first, rcfg)
        groups = [[st.traj for st in first[i * n_self : (i + 1) * n_self]] for i in range(len(tasks))]
        pass_rate = []
        for task, g in zip(tasks, groups):
            live = [t for t in g if t.stop_reason is not StopReason.ERROR]
            pass_rate.append(sum(correct(task, t) for t in live) / len(live) if live else 0.0)
        draws = [rng.random() for _ in tasks]  # one draw per task whatever happens: reproducible
        eligible = [pr < e.pass_rate_threshold and u < share for pr, u in zip(pass_rate, draws)]
        experts = await self.experts_for([t for t, ok in zip(tasks, eligible) if ok], engine, protocol, rcfg)

        # 2. anchors on the experts, scored by the current policy
        use = [ok and experts.get(t.id) is not None for t, ok in zip(tasks, eligible)]
        room = rcfg.max_response_tokens - 1  # a prefix must leave the policy a token to write
        plans: dict[int, list[tuple[int, int, float]]] = {}
        if n_cont:
            idx = [i for i, u in enumerate(use) if u]
            scored = self.anchor_scores([experts[tasks[i].id] for i in idx])
            for i, cands in zip(idx, scored):
                ex = experts[tasks[i].id]
                lens = _prefix_lengths(ex)
                cands = [(n, s) for n, s in cands if lens[n] <= room]
                if not cands:
                    continue
                chosen = choose_anchors([s for _, s in cands], e.anchors)
                plans[i] = [(cands[j][0], cnt, cands[j][1]) for j, cnt in zip(chosen, spread(n_cont, len(chosen)))]

        # 3. continuations from the anchors, or more self-exploration
        records: list[list[Branch]] = []
        roles: list[list[dict]] = []
        fresh, prefixes = [], []
        for i, task in enumerate(tasks):
            rec = [Branch(t) for t in groups[i]]
            info = [{"role": "self"} for _ in groups[i]]
            extra = n_cont
            if use[i]:
                ex = copy.deepcopy(experts[task.id])
                ex.sample = len(rec)
                ex.gold = task.answer
                parent = len(rec)
                rec.append(Branch(ex))
                info.append({"role": "expert"})
                for n_steps, cnt, _ in plans.get(i, []):
                    for _ in range(cnt):
                        tr = prefix_trajectory(ex, n_steps, sample=len(rec))
                        rec.append(Branch(tr, parent, n_steps))
                        info.append({"role": "anchor", "anchor_step": n_steps})
                        prefixes.append(tr)
                        extra -= 1
            for st in start_states(protocol, tok, [task], extra, first_sample=len(rec)) if extra else []:
                rec.append(Branch(st.traj))
                info.append({"role": "self"})
                fresh.append(st)
            records.append(rec)
            roles.append(info)
        second = fresh + await continue_states(protocol, tok, prefixes)
        await run_states(engine, protocol, second, rcfg)

        trees = []
        for i, task in enumerate(tasks):
            rollouts = sum(1 for r in roles[i] if r["role"] != "expert")
            meta = {"strategy": "e3", "rollouts": rollouts, "share": share, "pass_rate": pass_rate[i], "expert": bool(use[i]),
                    "anchors": [{"n_steps": n, "continuations": c, "entropy": round(s, 6)} for n, c, s in plans.get(i, [])]}
            tree = RolloutTree.from_lineage(task.id, records[i], meta)
            by_sample = {rec.traj.sample: r for rec, r in zip(records[i], roles[i])}
            for leaf in tree.leaves():
                leaf.info.update(by_sample[leaf.info["sample"]])
            trees.append(tree)
        n = len(tasks)
        self._stats = {
            "e3/phase": 1.0, "e3/share": share, "e3/self_pass_rate": sum(pass_rate) / n if n else 0.0,
            "e3/tasks_eligible": sum(eligible) / n if n else 0.0, "e3/tasks_with_expert": sum(use) / n if n else 0.0,
            "e3/anchors_per_task": sum(len(plans.get(i, [])) for i in range(n)) / n if n else 0.0,
        }
        depths = [a for p in plans.values() for a, _, _ in p]
        if depths:
            self._stats["e3/anchor_step"] = sum(depths) / len(depths)
        anchored = [leaf for t in trees for leaf in t.leaves() if leaf.info.get("role") == "anchor"]
        if anchored:
            by_task = {t.id: t for t in tasks}
            self._stats["e3/anchor_success"] = sum(correct(by_task[leaf.trajectory.task_id], leaf.trajectory) for leaf in anchored) / len(anchored)
        return trees

    # -- credit -----------------------------------------------------------------------------
    def credit(self, trees: Sequence[RolloutTree]) -> Credit:
        if not trees:
            return Credit([])
        if any(t.meta.get("strategy") != "e3" for t in trees):
            return self.after.credit(trees)
        a, e = self.cfg.algo, self.e3
        hcfg = HybridConfig(e.alpha, a.advantage, e.singleton_tree, AdvantageConfig(a.adv_eps, a.std_normalize))
        rows, values = [], []
        dropped = detached = 0
        for tree in trees:
            leaves = tree.leaves()
            used = [leaf for leaf in leaves if leaf.info.get("role") != "expert" or e.expert_guided]
            rewards = [float(leaf.reward) for leaf in used]
            if len(used) < 2 or (e.filter_zero_variance and max(rewards) - min(rewards) <= 1e-8):
                dropped += 1
                continue
            sub = {"self": 0, "expert": 1}
            anchor_ids: dict[int, int] = {}
            subgroup = []
            for leaf in used:
                role = leaf.info.get("role", "self")
                if role == "anchor":
                    subgroup.append(2 + anchor_ids.setdefault(leaf.info["anchor_step"], len(anchor_ids)))
                else:
                    subgroup.append(sub[role])
            adv_B = hybrid_advantages(torch.tensor(rewards), torch.zeros(len(used), dtype=torch.long), torch.tensor(subgroup), hcfg)
            leaf_adv = {leaf.id: float(x) for leaf, x in zip(used, adv_B)}
            sampled = {lid: v for lid, v in leaf_adv.items() if tree.node(lid).info.get("role") != "expert"}
            cut = aagd_nodes(tree, sampled, e.aagd)
            flat = tree.flatten({leaf.id: leaf_adv.get(leaf.id, 0.0) for leaf in leaves}, per_leaf=True, clip_low=a.clip_low, clip_high=a.clip_high, mask_truncated=a.mask_truncated)
            for leaf, row in zip(leaves, flat):
                if leaf.id not in leaf_adv:
                    continue
                detached += _patch_row(row, leaf, leaf_adv[leaf.id], cut.get(leaf.id, set()), a.mask_truncated)
                rows.append(row)
            _annotate(tree, leaf_adv)
            values += list(leaf_adv.values())
        self._stats.update({"e3/zero_variance_dropped": float(dropped), "e3/aagd_detached_tokens": float(detached)})
        return Credit(rows, values)

    def step_report(self, trees: Sequence[RolloutTree]) -> tuple[dict[str, float], dict[str, int]]:
        """This step's E3 metrics and the expert costs spent since the last report."""
        costs = {k: int(v) for k, v in self._costs.items() if k in ("expert_samples", "expert_tokens", "expert_rejected")}
        metrics = dict(self._stats)
        metrics.update({f"e3/{k}": float(v) for k, v in self._costs.items()})
        self._costs = Counter()
        return metrics, costs


def _prefix_lengths(traj: Trajectory) -> dict[int, int]:
    """Completion tokens of the prefix that keeps n steps, for each candidate n."""
    out = {}
    for n, _ in anchor_candidates(traj):
        last = traj.steps[n - 1].tool_segment
        out[n] = sum(len(s) for s in traj.segments[: last + 1])
    return out


def _patch_row(row, leaf, advantage: float, cut: set[str], mask_truncated: bool) -> int:
    """Lay E3's arrays over a flattened row: expert tokens carry the row's advantage (for the
    off-policy term), AAGD's nodes are detached, and so are the expert tokens of a row that
    must not be trained at all (void turn, error, masked truncation). Returns the policy or
    expert tokens AAGD detached."""
    trainable = any(loss_mask(leaf.trajectory, mask_truncated=mask_truncated, origins=SFT_ORIGINS))
    n_detached = 0
    pos = 0
    for node in leaf.path():
        n = len(node.tokens)
        if node.id in cut:
            for t in range(pos, pos + n):
                if row.loss_mask[t] or row.offpolicy[t]:
                    n_detached += 1
                row.detach[t] = 1.0
        pos += n
    for t, off in enumerate(row.offpolicy):
        if off:
            row.advantage[t] = advantage
            if not trainable:
                row.detach[t] = 1.0
    return n_detached
