"""One rank of the two-process megatron tests (run by ``torch.distributed.run``; see test_megatron_distributed.py).

argv: MODEL_DIR OUT_DIR LAYOUT, LAYOUT one of ``tp2``, ``pp2``, ``dp2``, ``ep2`` (an MoE model), ``pp2vpp2`` (4 layers), ``tp2pp2``,
``cp2`` (context parallel), ``cp2pp2``, ``tp2cp2``. Rank 0 writes
what the test compares with one process. ``MCORE_TEST_DEVICE=cuda``: NCCL on one GPU per rank (GPU tests);
otherwise gloo on the CPU under the test shim.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(__file__))
import cpu_shim  # noqa: E402
from mcore_helpers import PGLoss, make_config, random_batch  # noqa: E402

LAYOUTS = {
    "tp2": {"tensor_model_parallel_size": 2},
    "pp2": {"pipeline_model_parallel_size": 2},
    "dp2": {},
    "ep2": {"expert_model_parallel_size": 2},
    "pp2vpp2": {"pipeline_model_parallel_size": 2, "virtual_pipeline_model_parallel_size": 2},
    "tp2pp2": {"tensor_model_parallel_size": 2, "pipeline_model_parallel_size": 2},
    "cp2": {"context_parallel_size": 2},
    "cp2pp2": {"context_parallel_size": 2, "pipeline_model_parallel_size": 2},
    "tp2cp2": {"tensor_model_parallel_size": 2, "context_parallel_size": 2},
}


def main(model_dir: str, out: str, layout: str) -> None:
    cuda = os.environ.get("MCORE_TEST_DEVICE") == "cuda"
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(device)
    else:
        cpu_shim.install()
        torch.set_num_threads(1)
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    def shard(batch):
        rows = batch["input_ids"].shape[0] // world
        return {k: v[rank * rows:(rank + 1) * rows].to(device) for k, v in batch.items()}

    def gather(t):
        parts = [torch.zeros_like(t) for _ in range(world)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts).cpu()

    def weights(backend):
        return {k: v.detach().cpu().clone() for k, v in backend.export_weights()}  # every rank consumes it

    # allgather: the alltoall MoE dispatcher needs CUDA streams (the key is ignored by dense models)
    cfg = make_config(model_dir, micro_batch_size=2, megatron={**LAYOUTS[layout], "moe_token_dispatcher_type": "allgather"})
    actor = MegatronBackend(cfg, role="actor", rank=rank, world_size=world, device=device)
    res = {"export0": weights(actor)}
    out_lp = actor.compute_log_probs(shard(random_batch(8, vocab=17, seed=1)), temperature=0.9, with_entropy=True)
    res["logp"], res["entropy"] = gather(out_lp["log_probs"].to(device)), gather(out_lp["entropy"].to(device))
    res["step1"] = actor.train_step(shard(random_batch(8, vocab=17, seed=2)), PGLoss(), temperature=0.9)
    res["params1"] = weights(actor)
    actor.save_checkpoint(os.path.join(out, "ckpt"))
    res["step2"] = actor.train_step(shard(random_batch(8, vocab=17, seed=3)), PGLoss())
    res["params2"] = weights(actor)
    actor.load_checkpoint(os.path.join(out, "ckpt"))
    res["reloaded"] = weights(actor)
    res["step2_again"] = actor.train_step(shard(random_batch(8, vocab=17, seed=3)), PGLoss())
    res["params2_again"] = weights(actor)
    if layout == "cp2":  # a critic too: its values are computed per CP rank's tokens and gathered
        from mcore_helpers import critic_batch
        from omegaconf import OmegaConf
        from rlinf_core.flows.objectives import ValueObjective

        critic_cfg = OmegaConf.merge(cfg, {"critic": {"optim": {"lr": 1e-2}}})
        critic = MegatronBackend(critic_cfg, role="critic", rank=rank, world_size=world, device=device)
        batch = critic_batch()
        res["critic_steps"] = [critic.train_step(shard(batch), ValueObjective()) for _ in range(2)]
        res["critic_values"] = gather(critic.compute_values(shard(batch)).to(device))
    if rank == 0:
        torch.save(res, os.path.join(out, "result.pt"))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:4])
