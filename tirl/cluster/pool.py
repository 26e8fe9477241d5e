"""The rollout workers as Ray actors: starting them, pushing weights, sampling a round across
them, and recovering from a worker that dies mid-step.

A round's tasks are cut into contiguous slices, one per worker (a task's whole tree on one
worker), each slice one ``sample`` call. Results are collected as they finish. A call that fails
because its actor died (killed, out of memory: ``RayActorError``) is resubmitted: Ray restarts
the actor (``cluster.max_restarts``), which rebuilds its engine and tools and has no weights, so
the newest weights are pushed to it first; an actor out of restarts has its slice moved to a live
worker. A slice's result is taken exactly once, from the call that completed, so no trajectory is
lost or counted twice; the step's metrics count the restarts and the resubmitted tasks.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from tirl.config import Config
from tirl.errors import UserError
from tirl.rewards.base import RewardSpec
from tirl.types import Task

from .weight_sync import WEIGHT_SYNCS, WeightHandle
from .worker import RolloutWorker, SampleRequest, SampleResult


class RayUnavailable(UserError, RuntimeError):
    """Ray is not installed, or the cluster cannot be started or joined."""


def start_ray(cfg: Config) -> bool:
    """Join ``cluster.ray_address`` or start a local Ray cluster (a real one, not Ray's legacy
    local mode: every call is serialised as it would be across machines). Returns whether this
    call started it (and so should shut it down)."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable("error: cluster.scheduler=ray needs Ray: pip install 'tirl[ray]'") from None
    if ray.is_initialized():
        return False
    c = cfg.cluster
    opts: dict = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    try:
        if c.ray_address:
            ray.init(address=c.ray_address, **opts)
        else:
            mem = c.ray_object_store_mb * 2**20 if c.ray_object_store_mb else None
            ray.init(num_cpus=c.ray_num_cpus, object_store_memory=mem, **opts)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"join the Ray cluster at {c.ray_address}" if c.ray_address else "start a local Ray cluster"
        raise RayUnavailable(f"error: cannot {where}: {' '.join(str(e).split())[:300]}") from None
    return True


def split(tasks: Sequence[Task], n: int) -> list[tuple[int, list[Task]]]:
    """Contiguous slices (first task's index, tasks), sizes differing by at most one; empty
    slices left out."""
    out, start = [], 0
    for k in range(n):
        size = len(tasks) // n + (1 if k < len(tasks) % n else 0)
        if size:
            out.append((start, list(tasks[start : start + size])))
        start += size
    return out


@dataclass
class Pending:
    """One round in flight: the slices' requests, the worker each went to, their calls."""

    requests: list[SampleRequest]
    owner: list[int]
    refs: list = field(default_factory=list)
    submitted_at: float = 0.0


class RolloutPool:
    def __init__(self, cfg: Config, rewards: list[RewardSpec] | None = None):
        import ray

        self.cfg = cfg
        c = cfg.cluster
        self.started_ray = start_ray(cfg)
        actor = ray.remote(num_cpus=c.worker_cpus, num_gpus=c.worker_gpus, max_restarts=c.max_restarts, max_task_retries=0)(RolloutWorker)
        self.workers = [actor.remote(cfg, i, rewards) for i in range(c.rollout_workers)]
        self.dead: set[int] = set()  # out of restarts
        self.sync = WEIGHT_SYNCS[c.sync_mode](cfg.run_dir)
        self.handle: WeightHandle | None = None
        self.loads: list = []  # load_weights calls not yet collected
        self.counts = Counter()  # restarts, resubmitted tasks (since the last take_counts)

    # -- weights ------------------------------------------------------------------------------
    def push(self, params, version: int) -> None:
        """Publish ``version`` and queue its load on every worker (each loads it before its next
        sample call: an actor runs its calls in order)."""
        self.handle = self.sync.publish(params, version)
        self.counts["publish_s"] += self.sync.last_publish_s
        self.loads += [w.load_weights.remote(self.handle) for i, w in enumerate(self.workers) if i not in self.dead]

    def load_stats(self) -> dict[str, float]:
        """Wait for the queued loads; the slowest worker's seconds and the bytes each moved. A
        load lost with its actor is redone by recovery before that actor samples again."""
        import ray

        done = []
        for ref in self.loads:
            try:
                done.append(ray.get(ref))
            except ray.exceptions.RayActorError:
                self.counts["load_failed"] += 1
        self.loads = []
        if not done:
            return {}
        return {"load_s": max(d["seconds"] for d in done), "bytes": max(d["bytes"] for d in done)}

    # -- sampling -----------------------------------------------------------------------------
    def submit(self, tasks: Sequence[Task], step: int, round_: int, generator_state, expert_samples: int) -> Pending:
        g = self.cfg.rollout.group_size
        live = [i for i in range(len(self.workers)) if i not in self.dead]
        if not live:
            raise RuntimeError("every rollout worker has died and used up its restarts (cluster.max_restarts)")
        slices = split(tasks, len(live))
        reqs = [SampleRequest(list(ts), step, round_, start * g, generator_state, expert_samples) for start, ts in slices]
        owner = live[: len(reqs)]
        p = Pending(reqs, owner, submitted_at=time.perf_counter())
        p.refs = [self.workers[w].sample.remote(r) for w, r in zip(owner, reqs)]
        return p

    def collect(self, p: Pending) -> list[SampleResult]:
        """Every slice's result, in slice order, resubmitting slices whose worker died."""
        import ray

        results: list[SampleResult | None] = [None] * len(p.requests)
        waiting = {ref: k for k, ref in enumerate(p.refs)}
        while waiting:
            ready, _ = ray.wait(list(waiting), num_returns=1)
            k = waiting.pop(ready[0])
            try:
                results[k] = ray.get(ready[0])
            except ray.exceptions.RayActorError:
                waiting[self._resubmit(p, k)] = k
        return results  # type: ignore[return-value]

    def _resubmit(self, p: Pending, k: int):
        """Slice ``k``'s worker died: give the slice, after the newest weights, to the restarted
        actor, or to a live one when it has no restarts left."""

        self.counts["worker_restarts"] += 1
        self.counts["resubmitted_tasks"] += len(p.requests[k].tasks)
        w = p.owner[k]
        if not self._reload(w):
            self.dead.add(w)
            live = [i for i in range(len(self.workers)) if i not in self.dead]
            if not live:
                raise RuntimeError("every rollout worker has died and used up its restarts (cluster.max_restarts)")
            w = live[k % len(live)]
        p.owner[k] = w
        return self.workers[w].sample.remote(p.requests[k])

    def _reload(self, w: int) -> bool:
        """Push the newest weights to worker ``w`` once Ray has restarted it (it rebuilds its
        engine and tools first: ``ActorUnavailableError`` until then). False: it is gone for
        good (``ActorDiedError``: out of restarts) or did not come back in time."""
        import ray

        deadline = time.perf_counter() + self.cfg.cluster.restart_timeout_s
        died = 0
        while time.perf_counter() < deadline:
            try:
                ray.get(self.workers[w].load_weights.remote(self.handle))
                return True
            except ray.exceptions.ActorUnavailableError:  # restarting
                time.sleep(0.5)
            except ray.exceptions.RayActorError:
                died += 1  # the first may be Ray still reporting the crash itself
                if died > 2:
                    return False
                time.sleep(0.5)
        return False

    def take_counts(self) -> Counter:
        out, self.counts = self.counts, Counter()
        return out

    def pids(self) -> list[int]:
        import ray

        return ray.get([w.pid.remote() for w in self.workers])

    def close(self) -> None:
        import ray

        try:
            ray.get([w.close.remote() for i, w in enumerate(self.workers) if i not in self.dead], timeout=60)
        except Exception:  # noqa: BLE001 - a worker already gone has nothing to close
            pass
        for w in self.workers:
            ray.kill(w, no_restart=True)
        self.workers = []
        self.sync.close()
        if self.started_ray:
            ray.shutdown()
