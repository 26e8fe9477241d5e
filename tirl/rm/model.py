"""The trajectory reward model: the base model's decoder (LoRA-adapted) and a linear scalar
head read at the last token (LLaMA-Factory ``stage: rm`` value head, as AutoTraj trains it).

One rendering for training and serving (``rm_text``): the question as the user turn and the
trajectory text as the assistant turn of the tokenizer's chat template. AutoTraj's released
server scored only the response text, without the template it was trained on (docs/ALGORITHMS.md §7);
tirl serves exactly what it trains on. Long inputs keep their last ``max_tokens`` tokens (the
answer is at the end). Saved as ``rm.json`` (base model, settings), the LoRA adapter, ``head.pt``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from tirl.types import Task

META = "rm.json"


def rm_text(tokenizer, question: str, completion: str) -> str:
    """The chat rendering the reward model reads. Trailing special tokens the engine sampled
    (an EOS) are dropped first: the template closes the turn itself."""
    text = completion.rstrip()
    specials = sorted((t for t in tokenizer.all_special_tokens if t), key=len, reverse=True)
    changed = True
    while changed and text:
        changed = False
        for t in specials:
            if text.endswith(t):
                text, changed = text[: -len(t)].rstrip(), True
    msgs = [{"role": "user", "content": question}, {"role": "assistant", "content": text}]
    return tokenizer.apply_chat_template(msgs, tokenize=False)


class ScalarHeadModel(nn.Module):
    """``score_B = head(h_B,last)``: the hidden state of each row's last real token."""

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.head.weight, std=1.0 / (hidden_size + 1) ** 0.5)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids_BT: torch.Tensor, attn_BT: torch.Tensor) -> torch.Tensor:
        h_BTH = self.backbone(input_ids=ids_BT, attention_mask=attn_BT).last_hidden_state
        last_B = attn_BT.sum(dim=1).clamp(min=1) - 1  # right padding: index of the last real token
        return self.head(h_BTH[torch.arange(len(last_B)), last_B]).squeeze(-1)


def build_reward_model(
    base: str, lora_r: int = 8, lora_alpha: int = 16, target_modules: Sequence[str] | None = None, adapter: str | Path | None = None
):
    """(model, tokenizer) for the base model ``base``: its decoder with a fresh LoRA adapter (or
    the saved one in ``adapter``) and a scalar head. Only the adapter and the head train."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from tirl.models import load_model
    from tirl.models.peft_quiet import quiet_peft

    lm = load_model(base)
    decoder = lm.model.get_decoder()
    for p in decoder.parameters():
        p.requires_grad_(False)
    targets = list(target_modules or ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    with quiet_peft():
        if adapter is not None:
            backbone = PeftModel.from_pretrained(decoder, str(adapter), is_trainable=True)
        else:
            backbone = get_peft_model(decoder, LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=targets))
    model = ScalarHeadModel(backbone, lm.model.config.hidden_size)
    return model, lm.tokenizer


def encode(tokenizer, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask; each text keeps its last ``max_tokens`` tokens."""
    rows = [list(tokenizer(t, add_special_tokens=False)["input_ids"])[-max_tokens:] for t in texts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, : len(r)] = 1
    return ids, attn


def save_reward_model(model: ScalarHeadModel, out: str | Path, meta: dict) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(str(out / "adapter"))
    torch.save(model.head.state_dict(), out / "head.pt")
    (out / META).write_text(json.dumps(meta, indent=2))
    return out


class RewardModelScorer:
    """A trained reward model, ready to score ``(question, trajectory text)`` pairs in batches
    (``tirl.rewards.rm.TrajectoryScorer``)."""

    def __init__(self, model: ScalarHeadModel, tokenizer, max_tokens: int, batch_size: int = 8):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, batch_size: int = 8) -> RewardModelScorer:
        path = Path(path)
        if not (path / META).is_file():
            raise FileNotFoundError(f"{path} is not a tirl reward model (no {META}; train one with: tirl rm train PAIRS --out DIR)")
        meta = json.loads((path / META).read_text())
        model, tok = build_reward_model(meta["base"], adapter=path / "adapter")
        model.head.load_state_dict(torch.load(path / "head.pt", map_location="cpu"))
        return cls(model, tok, int(meta["max_tokens"]), batch_size)

    @torch.no_grad()
    def score_texts(self, questions: Sequence[str], completions: Sequence[str]) -> list[float]:
        texts = [rm_text(self.tokenizer, q, c) for q, c in zip(questions, completions, strict=True)]
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            ids, attn = encode(self.tokenizer, texts[i : i + self.batch_size], self.max_tokens)
            out += [float(x) for x in self.model(ids, attn)]
        return out

    def score(self, tasks: Sequence[Task], completions: Sequence[str]) -> list[float]:
        from tirl.judge.roles import task_question

        return self.score_texts([task_question(t) for t in tasks], completions)
