"""Saving a trainer's state and resuming from it: the checkpoint a run writes every
``train.checkpoint_every`` steps and ``--resume`` reads back (``tirl.train.checkpoint`` does the
files; this module knows which parts of an ``RLTrainer`` go into them)."""

from __future__ import annotations

from collections import Counter

from tirl.train.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from tirl.train.ranks import Load, SaveShards, loaded_everywhere


def save_trainer(trainer) -> None:
    """A checkpoint of the trainer's whole state at its current step (model or FSDP shards,
    optimiser, schedule, RNG states, task-stream position, cost totals)."""
    # rollouts in flight (pipelined) took their tasks already: a resumed run samples them again
    stream = (trainer.rollouts.checkpoint_stream_state() if trainer.rollouts is not None else None) or trainer.stream.state_dict()
    state = {"step": trainer.step, "stream": stream, "totals": dict(trainer.totals)}
    write_shards = None
    if trainer.policy.sharded is not None:  # FSDP: every rank writes its shards into the new checkpoint

        def write_shards(directory):
            trainer.dp.broadcast(SaveShards(str(directory)))
            trainer.policy.sharded.save(directory, trainer.optimizer)

    save_checkpoint(
        trainer.run_dir,
        trainer.step,
        model=trainer.policy.model,
        optimizer=trainer.optimizer,
        scheduler=trainer.scheduler,
        trainer_state=state,
        rng_extra={"engine": trainer.rt.engine.generator},
        keep_last=trainer.cfg.train.keep_last,
        write_shards=write_shards,
    )


def resume_trainer(trainer) -> None:
    """Restore the newest checkpoint that loads; a damaged newer one (truncated weights, a
    missing file, a bad manifest) is reported and skipped."""
    found = list_checkpoints(trainer.run_dir)
    if not found:
        raise CheckpointError(f"nothing to resume: {trainer.run_dir} has no complete checkpoint")
    for ckpt in reversed(found):
        if trainer.dp is not None:
            trainer.dp.broadcast(Load(str(ckpt)))  # every rank restores the same checkpoint
        try:
            state = load_checkpoint(
                ckpt,
                model=trainer.policy.model,
                optimizer=trainer.optimizer,
                scheduler=trainer.scheduler,
                rng_extra={"engine": trainer.rt.engine.generator},
                sharded=trainer.policy.sharded,
            )
            loaded = True
        except (CheckpointError, OSError) as e:
            trainer.notes.append(f"checkpoint {ckpt.name} is damaged ({str(e).splitlines()[0][:200]}); trying an older one")
            loaded = False
        if loaded_everywhere(loaded, trainer.dp):
            break
    else:
        raise CheckpointError(f"cannot resume {trainer.run_dir}: every checkpoint is damaged ({'; '.join(trainer.notes)})")
    trainer.policy.after_update()
    if ckpt is not found[-1]:
        trainer.notes.append(f"resumed from {ckpt.name}, the newest intact checkpoint")
    trainer.step = int(state["step"])
    trainer.stream.load_state_dict(state["stream"])
    trainer.totals = Counter(state.get("totals", {}))
    trainer.log.truncate_after(trainer.step)
