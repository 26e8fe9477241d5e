"""OpenAIEngine against an in-process fake server (httpx.MockTransport): prompt formats, token and
log-prob mapping, finish reasons, retries, timeouts, the concurrency limit and error messages."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time

import httpx
import pytest

from tirl.config import ConfigError, load_config
from tirl.engine import FinishReason, GenerationRequest, OpenAIEngine, OpenAIEngineConfig, OpenAIEngineError, SamplingParams

BASE = "http://fake.test/v1"


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from tirl.models.load import ensure_smollm2_cache

    return AutoTokenizer.from_pretrained(ensure_smollm2_cache())


class FakeServer:
    """Answers like vLLM (token-id prompts, ``token_id:N`` pieces) or like llama.cpp's Python
    server (text prompts only, text pieces covering a stop string cut from the text)."""

    def __init__(self, tok, style: str = "vllm", reply: str = "Hello world", finish: str = "stop", stop_cut: str | None = None):
        self.tok, self.style, self.reply, self.finish, self.stop_cut = tok, style, reply, finish, stop_cut
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self.headers: list[httpx.Headers] = []
        self.fail: list[int | str] = []  # statuses (or "drop"/"hang") to answer first, one per request
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.refuse_status = 500
        self.fail_text = ""

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.headers.append(request.headers)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.fail:
                f = self.fail.pop(0)
                if f == "drop":
                    raise httpx.ConnectError("connection refused", request=request)
                if f == "hang":
                    await asyncio.sleep(30)
                return httpx.Response(int(f), text=self.fail_text or f"failure {f}", headers={"retry-after": "0"} if f == 429 else {})
            if request.url.path.endswith("/models"):
                return httpx.Response(200, json={"object": "list", "data": [{"id": "served-model"}]})
            body = json.loads(request.content)
            self.bodies.append(body)
            if request.url.path.endswith("/chat/completions"):
                last = body["messages"][-1]["content"]
                return httpx.Response(
                    200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": f"re: {last}"}, "finish_reason": "stop"}]}
                )
            return self.completion(body)
        finally:
            self.in_flight -= 1

    def completion(self, body: dict) -> httpx.Response:
        prompt = body["prompt"]
        if self.style == "llamacpp" and not isinstance(prompt, str):
            # llama_cpp.server answers its request validation errors with HTTP 500
            return httpx.Response(
                self.refuse_status,
                json={"error": {"message": "1 validation errors: {'loc': ('body', 'prompt', 'str'), 'msg': 'Input should be a valid string'}"}},
            )
        n_prompt = len(prompt) if isinstance(prompt, list) else len(self.tok(prompt, add_special_tokens=False)["input_ids"])
        sampled = self.tok(self.reply + (self.stop_cut or ""), add_special_tokens=False)["input_ids"]
        text = self.reply  # the stop string is cut from the text, as both servers do by default
        if self.style == "vllm":
            pieces = [f"token_id:{t}" for t in sampled]
        else:
            pieces = [self.tok.decode([t]) for t in sampled]
        choice = {
            "index": 0,
            "text": text,
            "finish_reason": self.finish,
            "logprobs": {"tokens": pieces, "token_logprobs": [-0.5 - i for i in range(len(sampled))], "top_logprobs": None, "text_offset": []},
        }
        if self.style == "vllm":
            choice["stop_reason"] = self.stop_cut
        if self.style == "textonly":
            choice["logprobs"] = None
        return httpx.Response(200, json={"choices": [choice], "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(sampled)}})


def engine(server: FakeServer, tok=None, **cfg) -> OpenAIEngine:
    cfg.setdefault("backoff_s", 0.001)
    return OpenAIEngine(OpenAIEngineConfig(base_url=BASE, **cfg), tok, transport=server.transport())


def req(tok, text="What is 2+2?", **sp) -> GenerationRequest:
    return GenerationRequest(tok(text, add_special_tokens=False)["input_ids"], SamplingParams(**sp))


def test_vllm_style_token_ids_in_and_out(tok):
    srv = FakeServer(tok, "vllm", reply="x = 2+2\n", stop_cut="</python>")
    with engine(srv, tok) as eng:
        r = req(tok, temperature=0.7, top_k=5, max_new_tokens=32, stop_strings=("</python>", "</answer>"))
        (c,) = eng.generate([r])
    body = srv.bodies[0]
    assert body["prompt"] == r.prefix_ids and body["model"] == "served-model"  # looked up at /models
    assert body["max_tokens"] == 32 and body["temperature"] == 0.7 and body["top_k"] == 5 and body["min_p"] == 0.0
    assert body["stop"] == ["</python>", "</answer>"] and body["logprobs"] == 0
    want = tok("x = 2+2\n</python>", add_special_tokens=False)["input_ids"]
    assert c.token_ids == want  # the stop string's tokens are part of the completion, as in HFEngine
    assert c.logprobs == [-0.5 - i for i in range(len(want))]
    assert c.finish_reason is FinishReason.STOP_STRING and c.stop_string == "</python>"
    assert len(c.entropy) == len(want) and all(math.isnan(e) for e in c.entropy)
    assert eng.prompt_format == "token_ids" and eng.stats.retokenised == 0 and eng.stats.tokens_generated == len(want)


@pytest.mark.parametrize("refuse_status", [500, 422])
def test_llamacpp_style_falls_back_to_text_and_maps_pieces(tok, refuse_status):
    srv = FakeServer(tok, "llamacpp", reply="The sum is 4. ", stop_cut="</answer>")
    srv.refuse_status = refuse_status
    with engine(srv, tok) as eng:
        chat = tok.apply_chat_template([{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True)
        prefix = tok(chat, add_special_tokens=False)["input_ids"]
        (c,) = eng.generate([GenerationRequest(list(prefix), SamplingParams(stop_strings=("</python>", "</answer>")))])
        # the refusal is remembered: the next request goes straight to text
        eng.generate([req(tok)])
    # ids first (refused with 422), the same request again as text, then text straight away
    assert [isinstance(b["prompt"], str) for b in srv.bodies] == [False, True, True]
    assert srv.bodies[1]["prompt"] == tok.decode(prefix)  # special tokens kept for the server to parse
    assert eng.prompt_format == "text"
    want = tok("The sum is 4. </answer>", add_special_tokens=False)["input_ids"]
    assert c.token_ids == want and c.logprobs == [-0.5 - i for i in range(len(want))]
    assert c.finish_reason is FinishReason.STOP_STRING and c.stop_string == "</answer>"
    assert eng.stats.prompt_token_mismatches == 0 and eng.stats.retokenised == 0


def test_eos_appends_eos_token_and_length_does_not(tok):
    srv = FakeServer(tok, "llamacpp", reply="Four.")
    with engine(srv, tok) as eng:
        (c,) = eng.generate([req(tok, stop_strings=("</answer>",))])
        assert c.finish_reason is FinishReason.EOS and c.stop_string is None
        assert c.token_ids[-1] == tok.eos_token_id and math.isnan(c.logprobs[-1])
        assert tok.decode(c.token_ids[:-1]) == "Four."
        srv.finish = "length"
        (c,) = eng.generate([req(tok)])
        assert c.finish_reason is FinishReason.LENGTH and tok.decode(c.token_ids) == "Four."


def test_text_only_server_retokenises_and_says_so(tok):
    srv = FakeServer(tok, "textonly", reply="Answer: 4 ", stop_cut="</answer>")
    with engine(srv, tok) as eng:
        (c,) = eng.generate([req(tok, stop_strings=("</answer>",))])
    # without sampled pieces the cut stop string cannot be seen: it reads as EOS, honestly counted
    assert eng.stats.retokenised == 1 and all(math.isnan(x) for x in c.logprobs)
    assert c.finish_reason is FinishReason.EOS and c.token_ids[-1] == tok.eos_token_id


def test_stop_token_ids_enforced_on_returned_ids(tok):
    srv = FakeServer(tok, "vllm", reply="a b c d", finish="length")
    stop_id = tok(" c", add_special_tokens=False)["input_ids"][0]
    with engine(srv, tok) as eng:
        (c,) = eng.generate([req(tok, stop_token_ids=(stop_id,))])
    assert srv.bodies[0]["stop_token_ids"] == [stop_id]
    assert c.token_ids[-1] == stop_id and c.finish_reason is FinishReason.EOS and tok.decode(c.token_ids) == "a b c"


def test_prompt_token_drift_is_counted(tok, caplog):
    srv = FakeServer(tok, "llamacpp")
    with engine(srv, tok, prompt_format="text") as eng:
        # 32 separately encoded "a" tokens re-tokenise as fewer tokens: the server sees another prompt
        one = tok("a", add_special_tokens=False)["input_ids"]
        with caplog.at_level("WARNING"):
            eng.generate([GenerationRequest(one * 32)])
    assert eng.stats.prompt_token_mismatches == 1 and "prompt tokens" in caplog.text


def test_retries_transient_failures_then_succeeds(tok):
    srv = FakeServer(tok)
    srv.fail = [503, "drop", 429]
    with engine(srv, tok, max_retries=3) as eng:
        (c,) = eng.generate([req(tok)])
    assert c.token_ids and eng.stats.retries == 3


def test_gives_up_after_max_retries_naming_url_and_status(tok):
    srv = FakeServer(tok)
    srv.fail = [500] * 10
    with engine(srv, tok, max_retries=2, model="m") as eng:
        with pytest.raises(
            OpenAIEngineError, match=r"POST http://fake.test/v1/completions: gave up after 3 attempt\(s\); last error: HTTP 500: failure 500"
        ) as ei:
            eng.generate([req(tok)])
    assert ei.value.status == 500 and len(srv.paths) == 3


def test_client_error_is_not_retried(tok):
    srv = FakeServer(tok)
    srv.fail = [404]
    with engine(srv, tok, model="m", prompt_format="token_ids") as eng:
        with pytest.raises(OpenAIEngineError, match=r"HTTP 404 \(is base_url=.* the API root, including /v1\?\): failure 404"):
            eng.generate([req(tok)])
    assert len(srv.paths) == 1


def test_validation_error_reported_as_500_is_not_retried(tok):
    srv = FakeServer(tok)
    srv.fail = [500]
    srv.fail_text = "1 validation error: top_k must be >= 0"
    with engine(srv, tok, model="m", prompt_format="token_ids") as eng:
        with pytest.raises(OpenAIEngineError, match=r"HTTP 500 \(the server rejected the request\): 1 validation error"):
            eng.generate([req(tok)])
    assert len(srv.paths) == 1


def test_timeout_is_retried_then_reported(tok):
    srv = FakeServer(tok)
    srv.fail = ["hang", "hang"]
    t0 = time.monotonic()
    with engine(srv, tok, model="m", timeout_s=0.2, max_retries=1) as eng:
        with pytest.raises(OpenAIEngineError, match=r"no response within timeout_s=0.2 s"):
            eng.generate([req(tok)])
    assert time.monotonic() - t0 < 5


def test_connection_refused_on_a_real_port(tok):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    eng = OpenAIEngine(OpenAIEngineConfig(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.001), tok)
    with (
        eng,
        pytest.raises(OpenAIEngineError, match=rf"http://127.0.0.1:{port}/v1/completions: gave up after 2 attempt\(s\); last error: ConnectError"),
    ):
        eng.generate([req(tok)])


def test_concurrency_limit(tok):
    srv = FakeServer(tok)
    srv.delay = 0.02
    with engine(srv, tok, model="m", max_concurrency=3) as eng:
        out = eng.generate([req(tok) for _ in range(12)])
    assert len(out) == 12 and srv.max_in_flight == 3


def test_sync_generate_inside_a_running_loop_and_async_generate(tok):
    srv = FakeServer(tok)
    with engine(srv, tok, model="m") as eng:

        async def main():
            a = eng.generate([req(tok)])  # as a sync caller inside a coroutine: blocks this thread
            b = await eng.agenerate(GenerationRequest(req(tok).prefix_ids, seed=2**40 + 5))  # one request, like HFEngine's
            c = await eng.agenerate_many([req(tok), req(tok)])
            return a, b, c

        a, b, c = asyncio.run(main())
    assert len(a) == 1 and len(c) == 2 and a[0].token_ids == b.token_ids == c[1].token_ids
    assert srv.bodies[1]["seed"] == (2**40 + 5) % 2**31 and "seed" not in srv.bodies[0]


def test_agent_loop_drives_the_engine(tok, echo_tool):
    """tirl's agent loop runs on OpenAIEngine (through agenerate): a tool call, its observation
    and a closed answer, with the stop strings the server cut restored."""
    from tirl.protocol import TagProtocol
    from tirl.rollout.agent_loop import RolloutConfig, rollout
    from tirl.types import Task

    replies = iter(["<python>print(2+2)", "<answer>The answer is \\boxed{4}."])

    class Scripted(FakeServer):
        def completion(self, body):
            if not isinstance(body["prompt"], str):
                return super().completion(body)  # refused: llama.cpp takes text prompts only
            self.reply = next(replies)
            self.stop_cut = "</python>" if "<python>" in self.reply else "</answer>"
            return super().completion(body)

    srv = Scripted(tok, "llamacpp")
    cfg = RolloutConfig(group_size=1, temperature=1.0)
    with engine(srv, tok, model="m") as eng:
        (group,) = asyncio.run(rollout(eng, TagProtocol([echo_tool]), [Task(id="t", prompt="2+2?", answer="4")], cfg))
    tr = group[0]
    assert tr.answer == "4" and tr.n_tool_calls == 1 and "</python>" in tr.text and tr.text.rstrip().endswith("</answer>")
    assert tr.stop_reason.value == "answer"


def test_chat_helper_and_api_key(tok, monkeypatch):
    monkeypatch.setenv("TIRL_TEST_KEY", "sekret")
    srv = FakeServer(tok)
    with engine(srv, api_key_env="TIRL_TEST_KEY") as eng:  # chat needs no tokenizer
        replies = eng.chat([[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]])
        assert eng.ask(["one", "two"]) == ["re: one", "re: two"]
    assert replies == ["re: hi"]
    chat_body = srv.bodies[0]
    assert chat_body["temperature"] == 0.0 and chat_body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert all(h.get("authorization") == "Bearer sekret" for h in srv.headers)


def test_unauthorised_names_the_key_variable(tok, monkeypatch):
    monkeypatch.delenv("TIRL_MISSING_KEY", raising=False)
    srv = FakeServer(tok)
    srv.fail = [401]
    with engine(srv, api_key_env="TIRL_MISSING_KEY", model="m") as eng:
        with pytest.raises(OpenAIEngineError, match=r"HTTP 401 \(check the API key; it is read from \$TIRL_MISSING_KEY, which is not set\)"):
            eng.ask(["hi"])


def test_bad_input_gives_clear_errors(tok):
    srv = FakeServer(tok)
    with engine(srv, tok, model="m") as eng:
        with pytest.raises(ValueError, match="request 1 has an empty prefix"):
            eng.generate([req(tok), GenerationRequest([])])
        with pytest.raises(ValueError, match="non-negative int token ids"):
            eng.generate([GenerationRequest([1, -3])])
        with pytest.raises(ValueError, match="message 0 must be a dict"):
            eng.chat([[{"role": "user"}]])
        with pytest.raises(ValueError, match="non-empty list of messages"):
            eng.chat(["hello"])
        assert eng.generate([]) == [] and eng.chat([]) == []
    with engine(srv) as eng, pytest.raises(ValueError, match="needs the server model's tokenizer"):
        eng.generate([GenerationRequest([1, 2])])
    closed = engine(srv, tok, model="m")
    closed.close()
    with pytest.raises(RuntimeError, match="after close"):
        closed.generate([req(tok)])


def test_malformed_replies_are_errors_not_crashes(tok):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, text="<html>not json</html>")
        return httpx.Response(200, json={"error": {"message": "model overloaded"}})

    eng = OpenAIEngine(OpenAIEngineConfig(base_url=BASE, model="m"), tok, transport=httpx.MockTransport(handler))
    with eng:
        with pytest.raises(OpenAIEngineError, match="the reply has an error: .*model overloaded"):
            eng.generate([req(tok)])
        with pytest.raises(OpenAIEngineError, match="not JSON"):
            eng.ask(["hi"])


def test_config_endpoints_section():
    cfg = load_config(None, ["endpoints.judge.base_url=http://127.0.0.1:8000/v1", "endpoints.judge.max_concurrency=2"])
    assert cfg.endpoint("openai:judge").max_concurrency == 2 and cfg.endpoint("judge").timeout_s == 120
    assert load_config().endpoints == {}  # existing configs are unchanged
    with pytest.raises(ConfigError, match="no endpoint 'expert'"):
        cfg.endpoint("expert")
    with pytest.raises(ConfigError, match="endpoints.judge.base_url: Value error, must start with http"):
        load_config(None, ["endpoints.judge.base_url=localhost:8000"])
    with pytest.raises(ConfigError, match="endpoints.judge.retries: unknown field"):
        load_config(None, ["endpoints.judge.retries=3"])
