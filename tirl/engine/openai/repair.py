"""Turn a server's ``/completions`` choice into a tirl ``Completion``, repairing what servers
leave out.

What servers return differs; what is repaired, how exactly, and what is counted in
``OpenAIEngineStats`` (``engine.stats``):

* **Sampled tokens.** vLLM returns token ids (``return_tokens_as_token_ids``: ``"token_id:N"``)
  — exact. llama.cpp returns each sampled token as text (``logprobs.tokens``); each piece is
  mapped back to the one id that decodes to it, which recovers the sampled ids exactly when
  every piece is one whole token of our tokenizer. When a piece does not map (a multi-byte
  character split across tokens, which llama.cpp drops), or the server sent no logprobs, the
  text is re-tokenised with our tokenizer: the ids are then a canonical tokenisation, not
  necessarily the sampled one, and the log-probs are unknown (NaN). Counted in
  ``stats.retokenised``.
* **Log-probs** are the server's: llama.cpp and vLLM report the model's raw distribution
  (temperature 1, no top-k/top-p), not the filtered one tirl's own engines report; they agree
  when sampling at temperature 1 without filters. Entropies are never returned (NaN).
* **Finish reasons.** ``length`` → LENGTH. ``stop`` is EOS or a stop string; the OpenAI API
  does not say which. vLLM's ``stop_reason`` says it; llama.cpp's log-probs cover the stop
  string's tokens although its text is cut before the stop string, which shows which one hit.
  A stop string ends the completion like in HFEngine: its tokens are part of the completion.
  On EOS the tokenizer's EOS id is appended (logprob NaN) unless the server already returned it;
  a server that stops on several end tokens (SmolLM2: ``<|im_end|>``, ``<|endoftext|>``) does not
  say which it sampled, so the appended id may differ from the sampled one. Finish reasons
  outside the API's are read as EOS and counted in ``stats.unknown_finish``.
* **Stop token ids** are sent as vLLM's extension and also enforced here on the returned ids.
"""

from __future__ import annotations

from typing import Any

from tirl.engine.base import Completion, FinishReason, SamplingParams
from tirl.engine.openai.errors import OpenAIEngineError, snippet
from tirl.engine.openai.stats import OpenAIEngineStats

_NAN = float("nan")


def decode(tok: Any, ids: list[int]) -> str:
    """Ids as the text a server re-tokenises: special tokens kept."""
    return tok.decode(ids, skip_special_tokens=False)


def encode(tok: Any, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"]) if text else []


def read_choice(choice: dict, sp: SamplingParams, url: str, tok: Any, stats: OpenAIEngineStats) -> Completion:
    """The completion a choice describes, in ``tok``'s ids."""
    text = choice.get("text")
    if not isinstance(text, str):
        raise OpenAIEngineError(f"POST {url}: a choice without text: {snippet(str(choice))}", url)
    lp = choice.get("logprobs") if isinstance(choice.get("logprobs"), dict) else {}
    pieces = lp.get("tokens") if isinstance(lp.get("tokens"), list) else None
    raw_lps = lp.get("token_logprobs") if isinstance(lp.get("token_logprobs"), list) else None
    ids = _piece_ids(pieces, tok) if pieces else None
    logprobs: list[float] = []
    if ids is not None:
        logprobs = [float(x) if isinstance(x, (int, float)) else _NAN for x in (raw_lps or [])]
        if len(logprobs) != len(ids):
            logprobs = [_NAN] * len(ids)
    # the text of every sampled token: it goes on through a stop string the server cut off
    if pieces and all(isinstance(p, str) for p in pieces):
        sampled_text = decode(tok, ids) if ids is not None and any(p.startswith("token_id:") for p in pieces) else "".join(pieces)
    else:
        sampled_text = text

    finish, stop_hit = _finish(choice, text, sampled_text, sp, stats)
    if ids is None:
        # no sampled ids: tokenise what was generated, putting back the stop string the server cut
        full = text + stop_hit if stop_hit is not None and not text.endswith(stop_hit) else text
        ids = encode(tok, full)
        logprobs = [_NAN] * len(ids)
        stats.retokenised += 1

    # stop_token_ids: vLLM honours them; a server that does not is cut here
    if sp.stop_token_ids:
        stops = set(sp.stop_token_ids)
        cut = next((i for i, t in enumerate(ids) if t in stops), None)
        if cut is not None:
            ids, logprobs, finish, stop_hit = ids[: cut + 1], logprobs[: cut + 1], FinishReason.EOS, None
    if finish is FinishReason.EOS:
        eos = _eos_ids(tok)
        if eos and not (ids and (ids[-1] in eos or ids[-1] in sp.stop_token_ids)):
            # like HFEngine, the completion ends with the EOS token the model sampled
            ids, logprobs = ids + [min(eos)], logprobs + [_NAN]
    return Completion(token_ids=ids, logprobs=logprobs, entropy=[_NAN] * len(ids), finish_reason=finish, stop_string=stop_hit)


def _eos_ids(tok: Any) -> set[int]:
    eos = getattr(tok, "eos_token_id", None)
    return {eos} if isinstance(eos, int) else set()


def _piece_ids(pieces: list[Any], tok: Any) -> list[int] | None:
    """Sampled ids from ``logprobs.tokens``: vLLM's ``token_id:N`` or one whole token's text
    per piece (llama.cpp). None when any piece is not exactly one token of our tokenizer."""
    ids: list[int] = []
    for p in pieces:
        if not isinstance(p, str):
            return None
        if p.startswith("token_id:") and p[9:].isdigit():
            ids.append(int(p[9:]))
            continue
        enc = encode(tok, p)
        if len(enc) != 1 or decode(tok, enc) != p:
            return None
        ids.append(enc[0])
    return ids


def _finish(choice: dict, text: str, sampled_text: str, sp: SamplingParams, stats: OpenAIEngineStats) -> tuple[FinishReason, str | None]:
    reason = choice.get("finish_reason")
    if reason == "length":
        return FinishReason.LENGTH, None
    if reason != "stop":
        stats.unknown_finish += 1
        return FinishReason.EOS, None
    stop_reason = choice.get("stop_reason")  # vLLM: the stop string, a stop token id or None (EOS)
    if isinstance(stop_reason, str) and stop_reason in sp.stop_strings:
        return FinishReason.STOP_STRING, stop_reason
    if "stop_reason" in choice and not isinstance(stop_reason, str):
        return FinishReason.EOS, None
    for s in sp.stop_strings:  # servers that keep the stop string in the text
        if s and text.endswith(s):
            return FinishReason.STOP_STRING, s
    # llama.cpp cuts the text before the stop string but its sampled tokens go on through it
    if sampled_text != text:
        rest = sampled_text[len(text) :] if sampled_text.startswith(text) else sampled_text
        hits = [(rest.find(s), i, s) for i, s in enumerate(sp.stop_strings) if s and s in rest]
        if hits:
            return FinishReason.STOP_STRING, min(hits)[2]
    return FinishReason.EOS, None
