"""One rank of the world-size-2 test (run by ``torch.distributed.run``; see test_fsdp_distributed.py).

argv: MODEL_DIR OUT_DIR. Rank 0 writes the results the test compares with world size 1.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
from fsdp_helpers import PGLoss, make_config, random_batch  # noqa: E402
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend  # noqa: E402


def main(model_dir: str, out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = make_config(model_dir, micro_batch_size=2, optim={"lr": 1e-3},
                      lr_sched={"lr_decay_style": "cosine"})

    def shard(batch):
        rows = batch["input_ids"].shape[0] // world
        return {k: v[rank * rows:(rank + 1) * rows] for k, v in batch.items()}

    def full_params(backend):
        return {k: v.clone() for k, v in backend.export_weights()}  # every rank consumes it

    actor = FSDPBackend(cfg, role="actor", rank=rank, world_size=world, total_steps=4)
    step1 = actor.train_step(shard(random_batch(8, seed=2)), PGLoss(), temperature=0.9)
    params1 = full_params(actor)
    logp = actor.compute_log_probs(shard(random_batch(8, seed=3)), temperature=0.9)["log_probs"]
    gathered = [torch.zeros_like(logp) for _ in range(world)]
    dist.all_gather(gathered, logp)
    actor.save_checkpoint(os.path.join(out, "ckpt"))
    step2 = actor.train_step(shard(random_batch(8, seed=4)), PGLoss(), temperature=0.9)
    params2 = full_params(actor)

    again = FSDPBackend(cfg, role="actor", rank=rank, world_size=world, total_steps=4)
    again.load_checkpoint(os.path.join(out, "ckpt"))
    reloaded = full_params(again)
    step2b = again.train_step(shard(random_batch(8, seed=4)), PGLoss(), temperature=0.9)
    params2b = full_params(again)

    critic = FSDPBackend(make_config(model_dir, critic={"optim": {"lr": 1e-2}}, micro_batch_size=2), role="critic",
                         rank=rank, world_size=world)
    values = critic.compute_values(shard(random_batch(8, seed=3)))
    if rank == 0:
        assert params1 == {} or len(params1) > 0
        torch.save({"step1": step1, "params1": params1, "logp": torch.cat(gathered), "step2": step2, "params2": params2,
                    "reloaded": reloaded, "step2b": step2b, "params2b": params2b, "values_shape": tuple(values.shape)},
                   os.path.join(out, "ws2.pt"))
    else:
        assert params1 == {} and params2 == {}  # only rank 0 receives the full weights
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
