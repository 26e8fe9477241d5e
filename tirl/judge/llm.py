"""A chat model through the Engine interface, and the prompt files.

``ChatModel.chat(conversations)`` renders each conversation with the engine's tokenizer chat
template, generates once per conversation and returns the decoded replies. Prompts are
``string.Template`` files (``$question``, ``$trajectory``): ``$`` placeholders leave the
``\\boxed{}`` and ``<tag>`` text of trajectories untouched. ``make_engine`` builds the engine of
the judge / refiner / repairer a config names: None is the policy's own engine (the setting the
ET-Agent paper describes); ``openai:<name>`` a configured OpenAI-compatible endpoint; a model
alias, directory or hub id loads a second local model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

from tirl.engine.base import Engine, GenerationRequest, SamplingParams


def load_prompt(name: str) -> Template:
    """The packaged prompt ``tirl/judge/prompts/{name}.txt``."""
    path = resources.files("tirl.judge") / "prompts" / f"{name}.txt"
    if not path.is_file():
        known = sorted(p.name[:-4] for p in (resources.files("tirl.judge") / "prompts").iterdir() if p.name.endswith(".txt"))
        raise FileNotFoundError(f"no prompt {name!r}; packaged prompts: {', '.join(known)}")
    return Template(path.read_text(encoding="utf-8"))


def render_prompt(name: str, **fields: str) -> str:
    """Fill a packaged prompt; a placeholder left unfilled is a bug, so it raises."""
    return load_prompt(name).substitute(**fields)


def last_tag(text: str, tag: str) -> str | None:
    """Content of the last ``<tag>…</tag>`` in ``text`` (stripped), None when absent."""
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
    return found[-1].strip() if found else None


@dataclass
class ChatModel:
    engine: Engine
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(temperature=0.0, max_new_tokens=512))

    def chat(self, conversations: Sequence[list[dict[str, str]]]) -> list[str]:
        tok = self.engine.tokenizer
        reqs = []
        for msgs in conversations:
            text = tok.apply_chat_template(list(msgs), tokenize=False, add_generation_prompt=True)
            reqs.append(GenerationRequest(list(tok(text, add_special_tokens=False)["input_ids"]), self.sampling))
        if not reqs:
            return []
        return [tok.decode(c.token_ids, skip_special_tokens=True) for c in self.engine.generate(reqs)]

    def ask(self, prompts: Sequence[str]) -> list[str]:
        """One user turn per prompt."""
        return self.chat([[{"role": "user", "content": p}] for p in prompts])


def make_engine(spec: str | None, policy_engine: Engine, seed: int = 0, endpoints: Callable[[str], Any] | None = None) -> Engine:
    """The engine of a judge/refiner/repairer: the policy's (None or "policy"), an
    OpenAI-compatible server (``openai:<name>``, a named ``endpoints`` section; the server model's
    tokenizer is the endpoint's ``tokenizer``, else the policy's), or a local model's."""
    if spec is None or spec == "policy":
        return policy_engine
    if spec.startswith("openai:"):
        if endpoints is None:
            raise ValueError(f"judge model {spec!r}: no endpoints configured to resolve it")
        from tirl.engine.openai import OpenAIEngine

        cfg = endpoints(spec)
        return OpenAIEngine.from_config(cfg, tokenizer=None if cfg.tokenizer else policy_engine.tokenizer)
    if spec.startswith(("http://", "https://")):
        raise ValueError(f"judge model {spec!r}: name a configured endpoint instead, e.g. endpoints.judge.base_url={spec} and openai:judge")
    from tirl.engine import HFEngine, HFEngineConfig
    from tirl.models import load_model

    lm = load_model(spec)
    lm.model.eval()
    return HFEngine(lm.model, lm.tokenizer, HFEngineConfig(seed=seed))
