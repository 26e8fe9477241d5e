"""The chat helper's requests: messages in, reply text out, through ``/chat/completions``.

For judges and repairers that only need text (no tokenizer needed). ``OpenAIEngine.chat``,
``achat`` and ``ask`` run these on the engine's loop; the server applies its own chat template.
"""

from __future__ import annotations

from collections.abc import Sequence

from tirl.engine.base import SamplingParams
from tirl.engine.openai.api import chat_body, first_choice
from tirl.engine.openai.errors import OpenAIEngineError, snippet
from tirl.engine.openai.http import HTTPClient
from tirl.engine.openai.loop import gather_or_cancel

CHAT_DEFAULT = SamplingParams(temperature=0.0, max_new_tokens=512)  # judges answer deterministically by default


def check_conversations(conversations: Sequence[Sequence[dict[str, str]]]) -> list[list[dict[str, str]]]:
    """The conversations as plain role/content messages, or a ValueError naming the bad one."""
    out = []
    for i, conv in enumerate(conversations):
        if isinstance(conv, (str, bytes)) or not conv:
            raise ValueError(f"openai engine: conversation {i} must be a non-empty list of messages")
        msgs = []
        for j, m in enumerate(conv):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError(f"openai engine: conversation {i}, message {j} must be a dict with string 'role' and 'content', got {m!r:.120}")
            msgs.append({"role": m["role"], "content": m["content"]})
        out.append(msgs)
    return out


async def chat_all(http: HTTPClient, convs: list[list[dict[str, str]]], sp: SamplingParams) -> list[str]:
    """One reply per conversation, concurrently; the first failure cancels the rest."""
    model = await http.model()
    return await gather_or_cancel([_chat_one(http, model, c, sp) for c in convs])


async def _chat_one(http: HTTPClient, model: str, messages: list[dict[str, str]], sp: SamplingParams) -> str:
    data = await http.request("POST", "/chat/completions", chat_body(http.config, model, messages, sp))
    url = f"{http.base}/chat/completions"
    msg = first_choice(data, url).get("message")
    if not isinstance(msg, dict):
        raise OpenAIEngineError(f"POST {url}: a choice without a message: {snippet(str(data))}", url)
    content = msg.get("content")
    if content is not None and not isinstance(content, str):
        raise OpenAIEngineError(f"POST {url}: message content is not text: {snippet(str(content))}", url)
    return content or ""
