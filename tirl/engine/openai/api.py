"""The OpenAI API's JSON as tirl writes and reads it: the request bodies of ``/completions`` and
``/chat/completions``, and the first choice of a reply.

Bodies ask for one choice, no streaming. With ``sampling_extensions`` (default) they also carry
the non-OpenAI fields that make vLLM and llama.cpp sample what ``SamplingParams`` says:
llama.cpp's server defaults (top_k 40, min_p 0.05, repeat penalty 1.1) differ from tirl's, so
top_k, min_p=0 and neutral repetition penalties are sent; for completions also vLLM's
token-id fields (sampled ids as ``token_id:N``, special tokens and the stop string kept, so
nothing is re-tokenised) and ``stop_token_ids``. Strict servers that reject unknown fields (the
hosted OpenAI API) need them off, and then ``top_k`` cannot be sent at all.
"""

from __future__ import annotations

from typing import Any

from tirl.engine.base import SamplingParams
from tirl.engine.openai.config import OpenAIEngineConfig
from tirl.engine.openai.errors import OpenAIEngineError, snippet


def completion_body(config: OpenAIEngineConfig, model: str, prompt: list[int] | str, sp: SamplingParams, seed: int | None) -> dict:
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": sp.max_new_tokens,
        "temperature": sp.temperature,
        "top_p": sp.top_p,
        "n": 1,
        "stream": False,
    }
    if seed is not None:
        body["seed"] = seed % 2**31  # llama.cpp's sampler seed is 32-bit; tirl's seeds are 62-bit
    if sp.stop_strings:
        body["stop"] = list(sp.stop_strings)
    if config.logprobs:
        body["logprobs"] = 0  # the sampled token's log-prob; no alternatives
    if config.sampling_extensions:
        body.update(_sampling_extensions(sp))
        # vLLM: report ids, keep special tokens and the stop string, so nothing is re-tokenised
        body.update({"return_tokens_as_token_ids": True, "skip_special_tokens": False, "include_stop_str_in_output": True})
        if sp.stop_token_ids:
            body["stop_token_ids"] = list(sp.stop_token_ids)
    elif sp.top_k:
        raise ValueError("openai engine: top_k is not part of the OpenAI API; enable sampling_extensions for a server that supports it")
    return body


def chat_body(config: OpenAIEngineConfig, model: str, messages: list[dict[str, str]], sp: SamplingParams) -> dict:
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": sp.max_new_tokens,
        "temperature": sp.temperature,
        "top_p": sp.top_p,
        "n": 1,
        "stream": False,
    }
    if sp.stop_strings:
        body["stop"] = list(sp.stop_strings)
    if config.sampling_extensions:
        body.update(_sampling_extensions(sp))
    elif sp.top_k:
        raise ValueError("openai engine: top_k is not part of the OpenAI API; enable sampling_extensions for a server that supports it")
    return body


def _sampling_extensions(sp: SamplingParams) -> dict[str, Any]:
    # top_k 0 disables the filter in llama.cpp (which rejects -1) and in current vLLM
    return {"top_k": sp.top_k, "min_p": 0.0, "repeat_penalty": 1.0, "repetition_penalty": 1.0}


def first_choice(data: dict, url: str) -> dict:
    """The first choice of a reply, or an error saying what came instead."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        err = data.get("error")
        what = f"an error: {snippet(str(err))}" if err else f"no choices: {snippet(str(data))}"
        raise OpenAIEngineError(f"POST {url}: the reply has {what}", url)
    return choices[0]
