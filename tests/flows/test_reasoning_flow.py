"""The reasoning flow end to end on a tiny model: inline and Ray, every algorithm by config,
checkpoints and resume, bad input."""

from __future__ import annotations

import json

import pytest
from rlinf_core.errors import ConfigError


def _rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_inline_steps_produce_rewards_metrics_checkpoints_and_curve(tmp_path, tiny_arith_model, flow_config, make_flow):
    flow, run_dir = make_flow(flow_config(tmp_path, tiny_arith_model, **{"runner.save_interval": 2}))
    final = flow.train()
    rows = _rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward/mean", "response/length_mean", "actor/entropy", "actor/clipfrac", "actor/grad_norm",
                "throughput/tokens_per_s", "time/generate_s", "time/actor_update_s", "rollout/staleness"):
        assert key in final, key
    assert all(r["rollout/staleness"] == 0 and r["rollout/weight_version"] == r["step"] - 1 for r in rows)
    assert 0.0 <= final["reward/mean"] <= 1.0 and final["response/length_mean"] > 0
    assert (run_dir / "config.yaml").is_file() and (run_dir / "reward_curve.png").stat().st_size > 1000
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["global_step_2", "global_step_3"]


def test_reward_rises_on_an_easy_task(tmp_path, tiny_arith_model, flow_config, make_flow):
    cfg = flow_config(tmp_path, tiny_arith_model, **{"runner.max_steps": 25, "data.arithmetic.format_warmup_steps": 30,
                                                     "runner.logger.logger_backends": []})
    flow, run_dir = make_flow(cfg)
    flow.train()
    rewards = [r["reward/mean"] for r in _rows(run_dir) if "reward/mean" in r]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    # measured (seeded; the same at 1 and 2 torch threads): 0.41 over the first 5 steps -> 0.59 over the last 5
    assert last > first + 0.15, " ".join(f"{r:.2f}" for r in rewards)


@pytest.mark.parametrize("overrides", [
    {"algorithm.adv_type": "dr_grpo", "algorithm.loss_agg_func": "seq-mean-token-sum-norm"},
    {"algorithm.adv_type": "rloo", "algorithm.kl_penalty": "k3", "algorithm.kl_beta": 0.01, "actor.training_backend": "fsdp"},
    {"algorithm.adv_type": "reinpp", "algorithm.kl_penalty": "k1", "algorithm.kl_beta": 0.01, "algorithm.use_kl_loss": False},
    {"algorithm.adv_type": "gae", "algorithm.loss_type": "actor_critic", "algorithm.gamma": 1.0, "algorithm.gae_lambda": 0.95,
     "critic.optim.lr": 1e-3, "algorithm.value_clip": 0.2},
    {"algorithm.clip_ratio_low": 0.2, "algorithm.clip_ratio_high": 0.28, "algorithm.dynamic_sampling": True,
     "algorithm.max_num_gen_batches": 3, "algorithm.overlong_buffer_len": 1, "algorithm.n_minibatches": 2,
     "algorithm.update_epoch": 2, "actor.micro_batch_size": 8, "actor.global_batch_size": 16},
], ids=["dr_grpo", "rloo_kl_loss", "reinpp_kl_reward", "ppo_gae_critic", "dapo"])
def test_every_algorithm_runs_by_config(tmp_path, tiny_arith_model, flow_config, make_flow, overrides):
    flow, run_dir = make_flow(flow_config(tmp_path, tiny_arith_model, **{"runner.max_steps": 2,
                                                                          "runner.logger.logger_backends": [], **overrides}))
    final = flow.train()
    assert final["actor/grad_norm"] >= 0 and "reward/mean" in final
    if "algorithm.kl_beta" in overrides:
        assert "actor/kl" in final
    if overrides.get("algorithm.adv_type") == "gae":
        assert "critic/value_loss" in final
    if overrides.get("algorithm.dynamic_sampling"):
        assert final["dynamic_sampling/gen_batches"] >= 1


def test_resume_continues_with_the_same_data_order_and_rng(tmp_path, tiny_arith_model, flow_config, make_flow):
    base = {"runner.max_steps": 4, "runner.save_interval": 2, "runner.logger.logger_backends": []}
    straight, straight_dir = make_flow(flow_config(tmp_path / "a", tiny_arith_model, **base))
    straight.train()
    part, part_dir = make_flow(flow_config(tmp_path / "b", tiny_arith_model, **{**base, "runner.max_steps": 2}))
    part.train()
    resumed, _ = make_flow(flow_config(tmp_path / "b", tiny_arith_model, **base))
    resumed.train(resume=True)
    a, b = _rows(straight_dir), _rows(part_dir)
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for x, y in zip(a, b, strict=True):
        assert x["reward/mean"] == y["reward/mean"] and x["response/length_mean"] == y["response/length_mean"]
        assert x["actor/grad_norm"] == pytest.approx(y["actor/grad_norm"], rel=1e-4)


def test_batch_not_divisible_by_micro_batch_names_the_keys(tmp_path, tiny_arith_model, flow_config, make_flow):
    flow, _ = make_flow(flow_config(tmp_path, tiny_arith_model, **{"algorithm.n_minibatches": 3}))
    with pytest.raises(ConfigError, match=r"algorithm.n_minibatches=3.*actor.micro_batch_size"):
        flow.train()


def test_missing_model_path_is_one_line(tmp_path, tiny_arith_model, flow_config, make_flow):
    with pytest.raises(ConfigError, match="actor.model.model_path: '/nope' is not a directory"):
        make_flow(flow_config(tmp_path, tiny_arith_model, **{"actor.model.model_path": "/nope"}))


def test_evaluate_reports_pass_at_k(tmp_path, tiny_arith_model, flow_config, make_flow):
    cfg = flow_config(tmp_path, tiny_arith_model, **{"runner.max_steps": 1, "runner.save_interval": 1,
                                                     "runner.eval_pass_k": 4, "runner.logger.logger_backends": []})
    flow, run_dir = make_flow(cfg)
    flow.train()
    result = flow.evaluate()
    assert result["step"] == 1 and result["num_prompts"] == 4
    assert 0 <= result["pass@1"] <= result["pass@4"] <= 1


def test_ray_disaggregated_groups_run_the_same_flow(tmp_path, tiny_arith_model, flow_config, make_flow):
    pytest.importorskip("ray")
    cfg = flow_config(tmp_path, tiny_arith_model, **{
        "cluster.executor": "ray", "cluster.num_devices_per_node": 3, "cluster.placement": "disaggregated",
        "cluster.component_placement": {"actor": 0, "rollout": 1, "reward": 2},
        "runner.max_steps": 2, "runner.logger.logger_backends": []})
    flow, run_dir = make_flow(cfg)
    final = flow.train()
    rows = _rows(run_dir)
    assert [r["step"] for r in rows] == [1, 2] and 0 <= final["reward/mean"] <= 1
    assert rows[-1]["rollout/weight_version"] == 1 and final["actor/grad_norm"] > 0
