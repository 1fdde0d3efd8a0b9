"""A small flow with real compute: linear-system envs, a tiny torch policy, and a data-parallel
actor that sums gradients over torch.distributed (gloo). Needs torch.

rollout -> env -> reward -> advantage -> actor update -> weight sync, written once, run under every
executor and placement. Everything is float64 and seeded per env index, so results do not depend
on how envs and data are split among ranks.
"""

from __future__ import annotations

import torch

from rlinf_core.runtime import Worker
from rlinf_core.runtime.pipeline import run_env_rollout_loop

OBS, ACT = 4, 2
WORK = 256


def _busy(rows: int, cost: int, work: torch.Tensor) -> None:
    """Extra compute proportional to ``rows`` (for benchmarks: a heavier simulator or policy)."""
    h = torch.ones(rows, WORK)
    for _ in range(cost):
        h = torch.tanh(h @ work)


def _policy(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(OBS, 8), torch.nn.Tanh(), torch.nn.Linear(8, ACT)).double()


class EnvWorker(Worker):
    def __init__(self, num_envs: int, seed: int = 0, cost: int = 0):
        self.num_envs, self.per_mb = num_envs, num_envs
        self.seed, self.cost = seed, cost
        self.work = torch.randn(WORK, WORK, generator=torch.Generator().manual_seed(seed)) / WORK**0.5
        gen = torch.Generator().manual_seed(seed)
        self.A = torch.randn(OBS, OBS, generator=gen, dtype=torch.float64) * 0.5
        self.B = torch.randn(OBS, ACT, generator=gen, dtype=torch.float64)
        self.state: dict[int, torch.Tensor] = {}
        self.traj: dict[int, dict[str, list[torch.Tensor]]] = {}
        self.t: dict[int, int] = {}

    def _noise(self, mb: int, t: int) -> torch.Tensor:
        rows = [torch.randn(OBS, generator=torch.Generator().manual_seed(self.seed * 100003 + (mb * self.per_mb + i) * 1009 + t),
                            dtype=torch.float64) for i in range(self.per_mb)]
        return torch.stack(rows)

    def reset(self, mb: int, num_micro_batches: int = 1) -> torch.Tensor:
        if self.num_envs % num_micro_batches:
            raise ValueError(f"{self.num_envs} envs cannot be split into {num_micro_batches} micro-batches")
        self.per_mb = self.num_envs // num_micro_batches
        self.state[mb] = self._noise(mb, -1)
        self.traj[mb] = {"obs": [], "actions": [], "rewards": []}
        self.t[mb] = 0
        return self.state[mb]

    def step(self, mb: int, actions: torch.Tensor) -> torch.Tensor:
        s = self.state[mb]
        _busy(s.shape[0], self.cost, self.work)
        noise = self._noise(mb, self.t[mb])
        actions = actions + 0.3 * noise[:, :ACT]  # exploration, seeded per env and step
        nxt = torch.tanh(s @ self.A.T + actions @ self.B.T) + 0.01 * noise
        reward = -(nxt ** 2).sum(-1)
        for key, value in (("obs", s), ("actions", actions), ("rewards", reward)):
            self.traj[mb][key].append(value)
        self.state[mb], self.t[mb] = nxt, self.t[mb] + 1
        return nxt

    def collect(self, mb: int) -> dict[str, torch.Tensor]:
        return {k: torch.stack(v, dim=1) for k, v in self.traj[mb].items()}  # (envs, steps, ...)


class RolloutWorker(Worker):
    def __init__(self, seed: int = 0, cost: int = 0):
        self.policy, self.cost = _policy(seed), cost
        self.work = torch.randn(WORK, WORK, generator=torch.Generator().manual_seed(seed + 1)) / WORK**0.5

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        _busy(obs.shape[0], self.cost, self.work)
        return self.policy(obs)

    def set_weights(self, state: dict[str, torch.Tensor]) -> None:
        self.policy.load_state_dict(state)


class ActorWorker(Worker):
    """Data-parallel: each rank takes its shard; gradients are summed with all_reduce."""

    def __init__(self, seed: int = 0, lr: float = 0.05):
        self.policy = _policy(seed)
        self.opt = torch.optim.SGD(self.policy.parameters(), lr=lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # advantage: reward-to-go, normalised by the global count; loss pulls the policy's action
        # toward the taken action, weighted by the advantage (a deterministic surrogate).
        rtg = batch["rewards"].flip(1).cumsum(1).flip(1)
        adv = rtg - batch["baseline"]
        pred = self.policy(batch["obs"])
        loss = (adv.unsqueeze(-1) * (pred - batch["actions"]) ** 2).sum() / batch["global_count"]
        self.opt.zero_grad()
        loss.backward()
        if self.world_size > 1:
            import torch.distributed as dist

            for p in self.policy.parameters():
                dist.all_reduce(p.grad)
        self.opt.step()
        return {k: v.detach().clone() for k, v in self.policy.state_dict().items()}


def profile_env_rollout(num_envs: int, stage_nums=(1, 2, 4, 8), cost: int = 0):
    """Profile the demo env and policy stages in this process, at each micro-batch size."""
    from rlinf_core.runtime import RankInfo
    from rlinf_core.runtime.scheduler import profile_stage
    from rlinf_core.runtime.worker import construct_worker

    info = RankInfo("profile", 0, 1, (0,))
    policy = construct_worker(RolloutWorker, info, (), {"cost": cost})
    rows = [num_envs // k for k in stage_nums if num_envs % k == 0]

    envs = {r: construct_worker(EnvWorker, info, (r,), {"cost": cost}) for r in rows}
    for env in envs.values():
        env.reset(0)

    def env_step(r: int) -> None:
        envs[r].step(0, torch.zeros(r, ACT, dtype=torch.float64))

    def act(r: int) -> None:
        policy.act(torch.zeros(r, OBS, dtype=torch.float64))

    return profile_stage("env", env_step, rows), profile_stage("rollout", act, rows)


WORKERS = {"env": EnvWorker, "rollout": RolloutWorker, "actor": ActorWorker}


def run_demo_flow(rt, *, iterations: int = 2, steps: int = 3, stage_num: int = 2,
                  between_iterations=None) -> dict[str, object]:
    """rollout -> env -> reward -> advantage -> actor update -> weight sync, ``iterations`` times.

    ``between_iterations(rt, i)`` runs before iteration ``i >= 1`` (e.g. to rescale a group);
    the latest weights are synced to the rollout group after it, so training stays on-policy.
    """
    env, rollout, actor = rt["env"], rt["rollout"], rt["actor"]
    rewards, weights = [], None
    for i in range(iterations):
        if i and between_iterations is not None:
            between_iterations(rt, i)
        if weights is not None:
            rollout.call("set_weights", weights).result()
        run_env_rollout_loop(env, rollout, steps=steps, stage_num=stage_num)
        trajs = [env.call("collect", j, ranks=[j % env.world_size]).result()[0] for j in range(stage_num)]
        batch = {k: torch.cat([t[k] for t in trajs]) for k in trajs[0]}
        rewards.append(float(batch["rewards"].sum()))
        n = batch["rewards"].shape[0]
        baseline = batch["rewards"].flip(1).cumsum(1).flip(1).mean()
        shards = [
            {**{k: v[r::actor.world_size] for k, v in batch.items()}, "baseline": baseline, "global_count": n}
            for r in range(actor.world_size)
        ]
        weights = actor.scatter("update", shards).result()[0]
    return {"rewards": rewards, "weights": weights}
