"""RLTrainer: sample → score → advantage → rows → update → log → checkpoint.

The step reads top to bottom in ``train_step``; every piece it calls lives in its own module
(rollout, rewards, algo, rows, update). Recipes differ only in config: the rollout strategy
(``strategy.name``: flat groups, ARPO, ELPO or E3-TIR trees, ``tirl.train.strategies``) samples
one tree per task and turns the rewarded trees into rows; it sees the run only through the
``StepContext`` built here.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict

import torch

from tirl.algo import nonzero_variance_groups
from tirl.config import Config, ConfigError, save_config
from tirl.eval.runner import EvalReport, evaluate_async
from tirl.rewards.base import RewardSpec
from tirl.rewards.compose import apply_rewards
from tirl.rewards.schedule import Progress
from tirl.rollout.fit import NoTaskFits
from tirl.rollout.tree import tree_metrics
from tirl.tasks.reference import is_reference
from tirl.train import components as C
from tirl.train.checkpoint import list_checkpoints
from tirl.train.data import TaskStream
from tirl.train.memory import PhasePeak, release_memory
from tirl.train.parallel import DataParallel
from tirl.train.plots import plot_metrics
from tirl.train.policy import Policy, make_optimizer, make_scheduler
from tirl.train.ranks import Stop, Update, behaviour_cap, sharded_update
from tirl.train.remote import RemoteRollouts, RolloutsFactory
from tirl.train.resolve import export_final_model
from tirl.train.rng import seed_everything
from tirl.train.run_dir import claim
from tirl.train.run_log import RunLog
from tirl.train.scoring import TeacherForcingScorer
from tirl.train.sft import file_trajectories, reference_trajectories, run_sft
from tirl.train.step_metrics import rollout_metrics, update_metrics
from tirl.train.strategies import StepContext, make_strategy
from tirl.train.tracking import make_trackers
from tirl.train.trainer_state import resume_trainer, save_trainer
from tirl.train.update import policy_update
from tirl.types import Origin, RolloutTree, Task, TrainRow


class RLTrainer:
    def __init__(
        self,
        cfg: Config,
        resume: bool = False,
        overwrite: bool = False,
        dp: DataParallel | None = None,
        rollouts_factory: RolloutsFactory | None = None,
    ):
        """``resume``: continue the run in cfg.run_dir from its newest intact checkpoint;
        otherwise start a fresh run there (refused where a run already is, unless ``overwrite``).
        The run directory stays locked to this trainer until ``train`` ends or ``close``.
        ``dp``: rank 0 of a data-parallel update (``tirl.train.ranks``: the other ranks follow
        the commands this trainer broadcasts). ``rollouts_factory``: starts the rollouts of
        ``cluster.scheduler=ray`` (``tirl.cluster.make_trainer`` passes it)."""
        if dp is not None and cfg.train.sft_first:
            raise ConfigError(
                "config error: train.sft_first runs in one process; with a data-parallel update run `tirl sft` first and start from its model (model.name=DIR)"
            )
        self.cfg = cfg
        self.dp = dp
        self.run_dir = cfg.run_dir
        # bad task data and bad tools (a custom class, an MCP server) fail first: before the run
        # directory is claimed and before the model loads
        train_tasks = C.tasks(cfg, "train", cfg.task.n_train)
        eval_tasks = C.tasks(cfg, cfg.task.eval_split, cfg.task.n_eval)
        tools = C.build_tools(cfg)
        self.lock = None
        try:
            self.lock = claim(self.run_dir, fresh=not resume, overwrite=overwrite)
            save_config(cfg, self.run_dir / "config.yaml")
            seed_everything(cfg.train.seed)
            # asyncio.Runner turns Ctrl-C during a rollout into cancelling it (every trajectory's
            # coroutine unwinds) before KeyboardInterrupt reaches the caller; a bare loop would raise
            # it inside whichever task was running and leave the others pending.
            self.runner = asyncio.Runner()
            self.policy = Policy(cfg, dp=dp)
            self.tokenizer = self.policy.tokenizer
            self.rt = C.build_runtime(cfg, self.policy.generation_model(), self.tokenizer, seed=cfg.train.seed, tools=tools)
        except BaseException:
            C.close_tools(tools)
            if self.lock is not None:
                self.lock.release()
            raise
        self.progress = Progress(step=0, total=cfg.train.steps)  # read by scheduled rewards (ET-Agent σ decay)
        self.mem = PhasePeak()  # peak resident memory of each step's rollout and update (mem/*)
        self._rewards = C.rewards(cfg, self.rt.protocol, self.progress)
        self._custom_rewards: list[RewardSpec] | None = None  # set by assigning ``rewards``
        self.rollouts_factory = rollouts_factory
        self.rollouts: RemoteRollouts | None = None  # Ray rollout workers, started at the first step
        self.strategy = make_strategy(cfg)  # flat groups, ARPO or ELPO trees, E3-TIR (strategy.name)
        # E3-TIR scores expert anchors by teacher forcing through the live policy
        self.scorer = TeacherForcingScorer(self.policy.generation_model(), self.tokenizer.pad_token_id, cfg.optim.micro_batch_size, cfg.optim.bf16)
        train_fit = C.fit(self.rt, train_tasks)
        eval_fit = C.fit(self.rt, eval_tasks)
        try:
            self.stream = TaskStream(train_fit.require("training tasks"), seed=cfg.train.seed)
            self.eval_tasks = eval_fit.require("held-out tasks")
        except NoTaskFits:
            self.lock.release()
            raise
        o = cfg.optim
        self.optimizer = make_optimizer(self.policy.trainable_parameters(), o.lr, o.weight_decay, o.betas)
        self.scheduler = make_scheduler(self.optimizer, o.schedule, o.warmup_steps, cfg.train.steps)
        try:
            trackers = make_trackers(cfg, self.run_dir, resume=resume)  # W&B / MLflow problems end here, before any step
        except BaseException:
            self.lock.release()
            raise
        self.log = RunLog(self.run_dir, trackers, cfg.log.table_rows)
        self.step = 0
        self.notes: list[str] = [n for n in (train_fit.note("training tasks"), eval_fit.note("held-out tasks")) if n]
        # ^ one-line notices for the user (tasks over the context, a damaged checkpoint skipped...)
        self.totals = Counter()  # cost accounting across the run (rollouts, tokens trained, wall time)
        if resume:
            self._resume()

    # -- one RL step ------------------------------------------------------------------------
    def step_context(self, rng: random.Random) -> StepContext:
        """All a strategy learns about the run at this step."""
        cfg = self.cfg
        return StepContext(
            engine=self.rt.engine,
            protocol=self.rt.protocol,
            rollout=C.rollout_config(cfg),
            rng=rng,
            step=self.step,
            total_steps=cfg.train.steps,
            scorer=self.scorer,
            expert_samples=int(self.totals.get("expert_samples", 0)),
            run_dir=self.run_dir,
        )

    def sample_batch(self) -> tuple[list[Task], list[RolloutTree], dict]:
        """Roll out tasks_per_step tasks with the configured strategy (one tree per task) and
        reward each tree's leaves as the task's group; with dynamic sampling keep only trees
        whose rewards differ, sampling further tasks (at most max_resample_rounds more rounds)
        to fill the batch."""
        cfg, want = self.cfg, self.cfg.train.tasks_per_step
        kept_tasks: list[Task] = []
        kept: list[RolloutTree] = []
        stats = Counter()
        rounds = 0
        while len(kept) < want:
            pre = self.rollouts.collect_prefetched(self.step) if self.rollouts is not None and rounds == 0 else None
            if pre is not None:  # sampled while the last update ran (cluster.max_staleness > 0)
                tasks, trees = pre
            else:
                tasks = self.stream.take(want - len(kept) if cfg.algo.dynamic_sampling else want)
                trees = self._sample_round(tasks, rounds)
            for task, tree in zip(tasks, trees):
                live = tree.trajectories()  # infrastructure failures are not in the tree
                stats["rollouts"] += tree.rollouts
                stats["infra_dropped"] += tree.dropped
                if len(live) < 2:
                    stats["groups_too_small"] += 1
                    continue
                if cfg.algo.dynamic_sampling:
                    r = torch.tensor([t.reward for t in live])
                    if not bool(nonzero_variance_groups(r, torch.zeros(len(live), dtype=torch.long)).any()):
                        stats["groups_zero_variance"] += 1
                        continue
                kept_tasks.append(task)
                kept.append(tree)
            if not cfg.algo.dynamic_sampling or rounds >= cfg.algo.max_resample_rounds:
                break
            rounds += 1
        stats["resample_rounds"] = rounds
        return kept_tasks[:want], kept[:want], dict(stats)

    def _sample_round(self, tasks: list[Task], rounds: int) -> list[RolloutTree]:
        """One round: a tree per task, rewarded, every trajectory stamped with the weights' version."""
        expert_samples = int(self.totals.get("expert_samples", 0))
        if self.rollouts is not None:
            return self.rollouts.sample_round(tasks, self.step, rounds, self.rt.engine.generator, expert_samples)
        rng = random.Random(f"{self.cfg.train.seed}/{self.step}/{rounds}")  # branching decisions, reproducible on resume
        trees = self.runner.run(self.strategy.sample(tasks, self.step_context(rng)))
        apply_rewards([(task, tree.trajectories()) for task, tree in zip(tasks, trees)], self.rewards)
        for tree in trees:
            for tr in tree.trajectories():
                tr.policy_version = self.step  # the live weights have taken this many steps
        return trees

    def _prefetch(self) -> None:
        """Pipelined runs: start the rollouts of the next max_staleness steps now, before this
        step's update (they sample the weights the workers have: this step's)."""
        r, cfg = self.rollouts, self.cfg
        while r.in_flight() < cfg.cluster.max_staleness and self.step + 1 + r.in_flight() < cfg.train.steps:
            state = self.stream.state_dict()
            tasks = self.stream.take(cfg.train.tasks_per_step)
            r.prefetch(self.step + 1 + r.in_flight(), tasks, state, int(self.totals.get("expert_samples", 0)))

    def train_step(self) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        if cfg.cluster.scheduler == "ray" and self.rollouts is None:
            self._start_rollouts()
        self.policy.model.eval()
        engine = self.rt.engine
        gen0 = engine.tokens_generated
        prefix0 = engine.counters().prefix_tokens_recomputed  # None: the engine keeps no prefixes
        self.progress.step = self.step
        self.mem.start()
        tasks, trees, sstats = self.sample_batch()
        metrics: dict = {f"rollout/{k}": float(v) for k, v in sstats.items()}
        if self.rollouts is not None:
            tasks, trees, lag = self.rollouts.within_staleness(tasks, trees, self.step)
            metrics.update(lag)
            if self.rollouts.pipelined:
                self._prefetch()
        t_roll = time.perf_counter() - t0
        mem_rollout = self.mem.peak_gb()
        trajs = [t for tree in trees for t in tree.trajectories()]
        metrics.update(tree_metrics(trees))
        if mem_rollout is not None:
            metrics["mem/rollout_peak_gb"] = mem_rollout
        emem = engine.memory(reset_peak=True)
        for name in ("weights_copy", "kv_cache", "prefix_store_peak"):
            if (b := getattr(emem, name)) is not None:
                metrics[f"mem/engine_{name}_gb"] = b / 2**30
        stats = None
        if trajs:
            credit = self.strategy.credit(trees)  # advantages and clip bounds -> TrainRows
            t1 = time.perf_counter()
            self.policy.model.train()
            norm = cfg.algo.norm_constant or float(cfg.rollout.max_response_tokens)
            # the update's activations get the memory the rollout's keys/values held (stale after
            # the update anyway), and the allocator hands freed pages back between phases
            engine.free_cache()
            release_memory()
            self.mem.start()
            stats = self._update(credit.rows, norm)
            release_memory()
            if (peak := self.mem.peak_gb()) is not None:
                metrics["mem/update_peak_gb"] = peak
            metrics.update(update_metrics(stats, torch.tensor(credit.values), time.perf_counter() - t1, behaviour_cap(cfg) is not None))
            self.totals["train_tokens"] += stats.n_tokens
            if stats.n_offpolicy_tokens:
                self.totals["offpolicy_tokens"] += stats.n_offpolicy_tokens
        elif self.dp is not None:
            self.dp.broadcast(Update([], 0.0, train=False))  # the other ranks step their schedule too
        report = self.strategy.after_step()  # E3-TIR: its metrics and expert costs
        generated = engine.tokens_generated - gen0
        prefix = None if prefix0 is None else engine.counters().prefix_tokens_recomputed - prefix0
        if self.rollouts is not None:
            self.rollouts.push(self.policy.generation_model(), self.step + 1)  # the weights after this step
            remote = self.rollouts.take_reports()  # what the workers' strategies reported
            report.metrics.update(remote.metrics)
            self.totals.update(remote.costs)
            cluster, generated, prefix = self.rollouts.take_metrics()
            metrics.update(cluster)
        metrics.update(rollout_metrics(trajs, t_roll, generated))
        if prefix is not None:
            metrics["engine/prefix_tokens_recomputed"] = float(prefix)
        metrics.update(report.metrics)
        self.totals.update(report.costs)
        metrics["lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        self.step += 1
        self.totals["rollouts"] += int(sstats.get("rollouts", 0))
        metrics["time/rollout_s"] = t_roll
        metrics["time/step_s"] = time.perf_counter() - t0
        self.totals["wall_s"] += metrics["time/step_s"]
        metrics.update({f"total/{k}": float(v) for k, v in self.totals.items()})
        if cfg.train.save_trajectories:
            self.log.trajectories(self.step, trajs)
        if cfg.strategy.save_trees:
            self.log.trees(self.step, trees)
        return metrics

    def _start_rollouts(self) -> None:
        """Ray: start the rollout workers with the current weights (at the first step, so a
        resumed run's weights and a program's ``rewards`` are the ones they get)."""
        if self.rollouts_factory is None:
            raise ConfigError(
                "config error: cluster.scheduler=ray needs the Ray driver: build the trainer with tirl.cluster.make_trainer (tirl train does)"
            )
        self.rollouts = self.rollouts_factory(self.cfg, self.policy.generation_model(), self.step, self._custom_rewards)

    def _update(self, rows: list[TrainRow], norm: float):
        """The optimiser step on the batch: here, or (data-parallel) this rank's share after
        handing the batch to the other ranks."""
        cfg = self.cfg
        if self.dp is None:
            return policy_update(
                self.policy, self.optimizer, rows, cfg.algo, cfg.optim, self.tokenizer.pad_token_id, norm, behaviour_cap=behaviour_cap(cfg)
            )
        self.dp.broadcast(Update(rows, norm))
        stats = sharded_update(self.policy, self.optimizer, rows, cfg, self.tokenizer.pad_token_id, norm, self.dp)
        self.policy.after_update()
        return stats

    @property
    def rewards(self) -> list[RewardSpec]:
        return self._rewards

    @rewards.setter
    def rewards(self, specs: list[RewardSpec]) -> None:
        """Replace the run's reward functions (Ray rollout workers receive them pickled)."""
        self._rewards = self._custom_rewards = specs

    # -- evaluation, checkpoints, the loop --------------------------------------------------
    def evaluate(self, tag: str, samples: int | None = None, temperature: float | None = None) -> EvalReport:
        """Held-out evaluation; ``samples``/``temperature`` default to train.eval_samples /
        train.eval_temperature."""
        cfg = self.cfg
        samples = cfg.train.eval_samples if samples is None else samples
        temperature = cfg.train.eval_temperature if temperature is None else temperature
        self.policy.model.eval()
        ks = [k for k in (1, 4, 8, 16) if k <= samples]
        rcfg = C.rollout_config(cfg, temperature=temperature)
        # evaluation draws from its own generator so that adding an eval never changes training samples
        saved = self.rt.engine.generator.get_state()
        self.rt.engine.generator.manual_seed(10_000 + self.step)
        try:
            report = self.runner.run(evaluate_async(self.rt.engine, self.rt.protocol, self.eval_tasks, samples, rcfg, ks, self.rewards))
        finally:
            self.rt.engine.generator.set_state(saved)
        self.log.trajectories(self.step, [t for g in report.groups for t in g], kind=f"eval_{tag}")
        self.log.evaluation(self.step, tag, report)
        return report

    def save(self) -> None:
        save_trainer(self)

    def _resume(self) -> None:
        resume_trainer(self)

    def warmup_sft(self, on_step: Callable | None = None) -> list:
        """SFT on the configured source before RL (the SFT-then-RL baseline's first stage)."""
        s = self.cfg.sft
        if is_reference(s.source):
            tasks = C.tasks(self.cfg, "train", s.n_examples)
            trajs = self.runner.run(reference_trajectories(tasks, self.rt.protocol, self.tokenizer))
        else:
            trajs = file_trajectories(s.source, s.all_trajectories)[: s.n_examples]
        self.totals["expert_samples"] += len(trajs)
        t0 = time.perf_counter()
        history = run_sft(
            self.policy.model,
            trajs,
            s,
            self.tokenizer.pad_token_id,
            self.cfg.optim.micro_batch_size,
            self.cfg.optim.bf16,
            self.cfg.train.seed,
            on_step,
            attention=self.cfg.optim.attention,
            micro_batch_tokens=self.cfg.optim.micro_batch_tokens,
            activation_checkpointing=self.cfg.optim.activation_checkpointing,
        )
        self.totals["sft_tokens"] += sum(h.tokens for h in history)
        self.totals["expert_tokens"] += sum(len(g) for t in trajs for g in t.segments if g.origin is not Origin.TOOL)
        self.totals["wall_s"] += time.perf_counter() - t0
        with open(self.run_dir / "sft_metrics.jsonl", "w") as f:
            for h in history:
                f.write(json.dumps(asdict(h)) + "\n")
        return history

    def train(
        self,
        on_step: Callable[[int, dict], None] | None = None,
        evaluate: bool = True,
        on_sft_step: Callable | None = None,
        say: Callable[[str], None] = lambda msg: None,
    ) -> dict:
        """The run: eval before, optional SFT warm-up (+ eval), RL steps with periodic eval and
        checkpoints, eval after, final model, plots. ``say`` receives one-line progress notes."""
        cfg = self.cfg.train
        results: dict = {}
        self.log.on_warning = say
        ok = False

        def timed_eval(tag: str, prefix: str, metrics: dict, sampled: bool = True) -> EvalReport:
            """The configured evaluation (and, at the run's stages, the sampled one when
            train.eval_sampled > 0); their scalars go into ``metrics`` under ``prefix/`` and
            ``prefix_t1/``."""
            say(f"evaluating ({tag}): {len(self.eval_tasks)} tasks x {cfg.eval_samples} samples")
            release_memory()
            self.mem.start()
            r = self.evaluate(tag)
            if (peak := self.mem.peak_gb()) is not None:
                metrics[f"mem/{prefix}_peak_gb"] = peak
            say(f"eval {tag}: accuracy {r.accuracy:.3f}, tool calls/task {r.tool_calls_per_task:.2f} ({r.wall_s:.0f} s)")
            metrics.update({f"{prefix}/{k}": v for k, v in r.scalars().items()})
            if cfg.eval_sampled and sampled:
                t1 = self.evaluate(f"{tag}_t1", cfg.eval_sampled, 1.0)
                say(f"eval {tag} (T=1, {cfg.eval_sampled} samples): accuracy {t1.accuracy:.3f} ({t1.wall_s:.0f} s)")
                metrics.update({f"{prefix}_t1/{k}": v for k, v in t1.scalars().items()})
                results[f"{tag}_t1"] = t1
            return r

        try:
            if self.step == 0:
                first: dict = {}
                if evaluate:
                    results["before"] = timed_eval("before", "eval", first)
                if cfg.sft_first:
                    say(f"SFT warm-up on {self.cfg.sft.source} ({self.cfg.sft.n_examples} examples, {self.cfg.sft.epochs} epoch(s))")
                    self.rt.engine.free_cache()  # SFT changes the weights: cached keys/values go stale
                    release_memory()
                    self.mem.start()
                    results["sft"] = self.warmup_sft(on_sft_step)
                    if (peak := self.mem.peak_gb()) is not None:
                        first["mem/sft_peak_gb"] = peak
                    release_memory()  # SFT's own optimiser state and activations
                    say(f"SFT done: final loss {results['sft'][-1].loss:.3f}")
                    if evaluate:
                        results["after_sft"] = timed_eval("after_sft", "eval_sft", first)
                if first:
                    self.log.log(0, first)
            while self.step < cfg.steps:
                metrics = self.train_step()
                if on_step is not None:  # the step's line comes before an evaluation that may take minutes
                    on_step(self.step, metrics)
                if (warning := logp_gap_warning(metrics.get("policy/logp_gap_engine"), cfg.logp_gap_warn)) is not None:
                    say(f"warning: step {self.step}: {warning}")
                if evaluate and cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    timed_eval(f"step{self.step}", "eval", metrics, sampled=False)
                if self.step == cfg.steps and evaluate:
                    results["after"] = timed_eval("after", "eval", metrics)
                self.log.log(self.step, metrics)
                if cfg.checkpoint_every and (self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps):
                    self.save()
            if self.dp is not None:
                self.dp.broadcast(Stop())  # the other ranks are done
            if self.step == cfg.steps:
                results["final_model"] = export_final_model(self.policy, self.tokenizer, self.run_dir, model=self.policy.generation_model())
            results["plot"] = plot_metrics(self.log.read(), self.run_dir / "plots" / "curves.png", title=self.cfg.run.name)
            ok = True
        finally:
            self.close(ok)
        return results

    def last_checkpoint_step(self) -> int | None:
        found = list_checkpoints(self.run_dir)
        return int(found[-1].name.split("_")[-1]) if found else None

    def close(self, ok: bool = True) -> None:
        """Close the log (``ok`` False: the tracked runs are marked failed), the tools and the
        engine, and unlock the run directory."""
        if self.lock is None:
            return
        try:
            self.log.close(ok)
            self.runner.run(_cancel_stray_tasks())  # e.g. an engine's decode driver after Ctrl-C
            self.runner.run(self.strategy.aclose())
            self.runner.run(self.rt.aclose())
            self.runner.close()
            if self.rollouts is not None:
                self.rollouts.close()
        finally:
            self.lock.release()
            self.lock = None


async def _cancel_stray_tasks() -> None:
    """Cancel and await every other task on the loop (left behind by an interrupted run)."""
    me = asyncio.current_task()
    stray = [t for t in asyncio.all_tasks() if t is not me]
    for t in stray:
        t.cancel()
    await asyncio.gather(*stray, return_exceptions=True)


def logp_gap_warning(gap: float | None, threshold: float) -> str | None:
    """The warning for a sampler/trainer log-prob gap above ``threshold`` (train.logp_gap_warn)."""
    if gap is None or not threshold or gap <= threshold:
        return None
    return (
        f"the sampler's and the trainer's log-probs differ by {gap:.3f} nats/token (> train.logp_gap_warn={threshold:g}); "
        "the update is off-policy: check that the engine has the current weights and samples with the configured "
        "temperature and chat template"
    )
