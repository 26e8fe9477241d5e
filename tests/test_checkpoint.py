"""Checkpoints: exact round trips (weights, AdamW, scheduler, RNG, trainer state), pruning,
crash safety, clear errors, and a PEFT LoRA adapter round trip."""

import json
import random

import numpy as np
import pytest
import torch

from tirl.train import checkpoint as ckpt
from tirl.train.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from tirl.train.rng import capture_rng, restore_rng


def tiny_llama(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=128,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


def train_steps(model, opt, sched, n=2):
    ids = torch.randint(0, 128, (2, 8))
    for _ in range(n):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()


def setup_run(seed=0):
    model = tiny_llama(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    train_steps(model, opt, sched)
    return model, opt, sched


def draws(gen):
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(), torch.rand(3, generator=gen).tolist())


def test_rng_capture_restore():
    gen = torch.Generator().manual_seed(7)
    state = capture_rng({"engine": gen})
    first = draws(gen)
    restore_rng(state, {"engine": gen})
    assert draws(gen) == first
    with pytest.raises(KeyError, match="'loader'.*saved: 'engine'"):
        restore_rng(state, {"loader": torch.Generator()})


def test_round_trip_restores_everything(tmp_path):
    model, opt, sched = setup_run()
    gen = torch.Generator().manual_seed(3)
    want_weights = {k: v.clone() for k, v in model.state_dict().items()}
    want_opt = opt.state_dict()
    want_opt_state = {i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for i, s in want_opt["state"].items()}
    path = save_checkpoint(
        tmp_path, 2, model=model, optimizer=opt, scheduler=sched, trainer_state={"data_pos": 17, "seen": [1, 2]}, rng_extra={"engine": gen}
    )
    assert path == tmp_path / "checkpoints" / "step_000002" and (path / "COMPLETE").is_file()
    assert {p.name for p in path.iterdir()} == {"model", "optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json", "COMPLETE"}
    expected_draws = draws(gen)

    # perturb everything: more training (weights, AdamW moments, scheduler), other RNG states
    train_steps(model, opt, sched, n=3)
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    gen.manual_seed(99)
    assert not torch.equal(model.state_dict()["model.norm.weight"], want_weights["model.norm.weight"])

    state = load_checkpoint(path, model=model, optimizer=opt, scheduler=sched, rng_extra={"engine": gen})
    assert state == {"data_pos": 17, "seen": [1, 2], "step": 2}
    for k, v in model.state_dict().items():
        assert torch.equal(v, want_weights[k]), k
    # the tie survived loading (lm_head is not in the file)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    got = opt.state_dict()
    assert got["param_groups"] == want_opt["param_groups"]
    for i, s in want_opt_state.items():
        for k, v in s.items():
            assert torch.equal(got["state"][i][k], v) if torch.is_tensor(v) else got["state"][i][k] == v
    assert sched.last_epoch == 2 and sched.get_last_lr() == [pytest.approx(1e-2 / 3)]
    assert draws(gen) == expected_draws


def test_resume_continues_like_an_uninterrupted_run(tmp_path):
    model, opt, sched = setup_run(seed=1)
    save_checkpoint(tmp_path, 2, model=model, optimizer=opt, scheduler=sched, trainer_state={})
    train_steps(model, opt, sched, n=2)
    reference = {k: v.clone() for k, v in model.state_dict().items()}

    model2, opt2, sched2 = setup_run(seed=5)  # a fresh process with other weights
    load_checkpoint(latest_checkpoint(tmp_path), model=model2, optimizer=opt2, scheduler=sched2)
    train_steps(model2, opt2, sched2, n=2)
    for k, v in model2.state_dict().items():
        assert torch.equal(v, reference[k]), k


def test_keep_last_prunes_oldest(tmp_path):
    model = tiny_llama()
    for step in (1, 2, 3, 4, 5):
        save_checkpoint(tmp_path, step, model=model, trainer_state={}, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000004", "step_000005"]
    # the checkpoint just written is kept even when it is older than the others
    save_checkpoint(tmp_path, 3, model=model, trainer_state={}, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000003", "step_000005"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000003", "step_000005"]
    save_checkpoint(tmp_path, 6, model=model, trainer_state={}, keep_last=None)
    assert len(list_checkpoints(tmp_path)) == 3
    with pytest.raises(ValueError, match="keep_last"):
        save_checkpoint(tmp_path, 7, model=model, trainer_state={}, keep_last=0)


def test_crash_mid_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, sched = setup_run()
    good = save_checkpoint(tmp_path, 1, model=model, optimizer=opt, trainer_state={"data_pos": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    # a write fails half-way (the optimiser state) ...
    with monkeypatch.context() as m:
        m.setattr(ckpt.torch, "save", crash)
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(tmp_path, 2, model=model, optimizer=opt, trainer_state={"data_pos": 2})
    # ... or the final rename does
    with monkeypatch.context() as m:
        m.setattr(ckpt.os, "replace", crash)
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(tmp_path, 2, model=model, optimizer=opt, trainer_state={"data_pos": 2})
    assert latest_checkpoint(tmp_path) == good
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_000001"]

    # a hard crash (no cleanup ran) leaves a finished-looking temp dir: it is ignored, then removed
    leftover = tmp_path / "checkpoints" / ".tmp-step_000002-abc"
    leftover.mkdir()
    (leftover / "COMPLETE").write_text(json.dumps({"step": 2, "files": []}))
    # and a step dir without its marker (e.g. copied by hand, half-way) is not a checkpoint
    half = tmp_path / "checkpoints" / "step_000003"
    half.mkdir()
    (half / "trainer_state.json").write_text("{}")
    assert latest_checkpoint(tmp_path) == good
    with pytest.raises(CheckpointError, match=r"step_000003 is incomplete: no COMPLETE marker"):
        load_checkpoint(half, model=model)

    later = save_checkpoint(tmp_path, 4, model=model, optimizer=opt, trainer_state={"data_pos": 4})
    assert latest_checkpoint(tmp_path) == later and not leftover.exists()
    assert load_checkpoint(later, model=model, optimizer=opt)["data_pos"] == 4


def test_clear_errors(tmp_path):
    model, opt, sched = setup_run()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_checkpoint(tmp_path / "nowhere", model=model)
    path = save_checkpoint(tmp_path, 1, model=model, trainer_state={})
    with pytest.raises(CheckpointError, match="no optimizer.pt"):
        load_checkpoint(path, model=model, optimizer=opt)
    (path / "rng.pt").unlink()
    with pytest.raises(CheckpointError, match="missing rng.pt"):
        load_checkpoint(path, model=model)
    path = save_checkpoint(tmp_path, 2, model=model, trainer_state={})
    other = torch.nn.Linear(4, 4)
    with pytest.raises(CheckpointError, match="do not match the model"):
        load_checkpoint(path, model=other)
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path, 3, model=model, trainer_state={"bad": object()})
    with pytest.raises(ValueError, match="disagrees"):
        save_checkpoint(tmp_path, 3, model=model, trainer_state={"step": 4})
    assert latest_checkpoint(tmp_path) == path


def test_plain_torch_module(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    want = {k: v.clone() for k, v in net.state_dict().items()}
    path = save_checkpoint(tmp_path, 0, model=net, trainer_state={})
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    load_checkpoint(path, model=net)
    assert all(torch.equal(v, want[k]) for k, v in net.state_dict().items())


def test_peft_lora_adapter_round_trip(tmp_path):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    want = {k: v.clone() for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path, 1, model=model, optimizer=opt, trainer_state={})
    files = {p.name for p in (path / "model").iterdir()}
    assert "adapter_model.safetensors" in files and "model.safetensors" not in files  # only the adapter

    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.add_(1.0)
    load_checkpoint(path, model=model, optimizer=opt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, want[k]), k

    # an adapter of another shape is refused with the keys named
    other = peft.get_peft_model(tiny_llama(), peft.LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj"]))
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_checkpoint(path, model=other)
