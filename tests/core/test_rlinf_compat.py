"""RLinf users' YAMLs load: every key of RLinf's published example configs is accepted."""

from __future__ import annotations

import pytest
from rlinf_core import ConfigError
from rlinf_core.config import load_config

RLINF_STYLE = """
cluster:
  num_nodes: 1
  component_placement:
    actor,env,rollout: all
runner:
  task_type: embodied
  max_epochs: 10
  max_steps: -1
  val_check_interval: 5
  save_interval: 10
  resume_dir: null
  only_eval: false
  seq_length: 2048
  logger:
    log_path: logs
    project_name: rlinf
    experiment_name: ppo-maniskill
    logger_backends: [tensorboard]
algorithm:
  adv_type: gae
  loss_type: actor_critic
  loss_agg_func: token-mean
  group_size: 8
  normalize_advantages: true
  kl_beta: 0.0
  kl_penalty_type: low_var_kl
  clip_ratio_low: 0.2
  clip_ratio_high: 0.28
  ratio_clip_eps: 0.2
  clip_ratio_c: 3.0
  value_clip: 0.2
  huber_delta: 10.0
  gamma: 0.99
  gae_lambda: 0.95
  reward_type: chunk_level
  logprob_type: token_level
  entropy_type: token_level
  entropy_bonus: 0
  filter_rewards: true
  rewards_lower_bound: 0.5
  rewards_upper_bound: 4.5
  recompute_logprobs: true
  n_minibatches: 4
  update_epoch: 1
  sampling_params: {do_sample: true, temperature: 1.0, top_k: 50, top_p: 0.95, max_new_tokens: 512, repetition_penalty: 1.0}
env:
  train:
    env_type: maniskill
    task_suite_name: libero_goal
    total_num_envs: 64
    max_episode_steps: 80
    max_steps_per_rollout_epoch: 80
    rollout_epoch: 1
    auto_reset: true
    ignore_terminations: false
    group_size: 8
    use_fixed_reset_state_ids: true
    use_rel_reward: true
    reward_coef: 1.0
    seed: 0
    video_cfg: {save_video: true, video_base_dir: videos}
    init_params: {camera_heights: 128, camera_widths: 128}
  eval:
    simulator_type: maniskill
rollout:
  generation_backend: huggingface
  model: {model_path: /models/openvla-oft, model_type: openvla_oft, precision: bf16}
  pipeline_stage_num: 2
  enable_offload: true
  gpu_memory_utilization: 0.5
  tensor_parallel_size: 1
  return_logprobs: true
  vllm: {enforce_eager: true}
  sglang: {attention_backend: triton}
actor:
  training_backend: fsdp
  micro_batch_size: 4
  global_batch_size: 64
  seed: 1
  enable_offload: true
  model: {model_path: /models/openvla-oft, model_type: openvla_oft, precision: bf16, is_lora: true, unnorm_key: libero_goal}
  optim: {lr: 1.0e-5, value_lr: 1.0e-4, adam_beta1: 0.9, adam_beta2: 0.999, adam_eps: 1.0e-8, weight_decay: 0.0, clip_grad: 1.0}
  lr_sched: {lr_warmup_fraction: 0.0, lr_decay_style: constant, min_lr: 0.0, max_lr: 1.0e-5}
  fsdp_config:
    strategy: fsdp2
    sharding_strategy: full_shard
    cpu_offload: false
    reshard_after_forward: true
    gradient_checkpointing: true
    mixed_precision: {param_dtype: bf16, reduce_dtype: fp32, buffer_dtype: fp32}
  tokenizer: {tokenizer_model: /models/openvla-oft, padding_side: left}
critic:
  use_critic_model: true
data:
  type: math
  train_data_paths: [train.jsonl]
  val_data_paths: [val.jsonl]
  prompt_key: prompt
  answer_key: answer
  max_prompt_length: 1024
  rollout_batch_size: 64
  shuffle: true
  seed: 1
  apply_chat_template: true
reward:
  reward_type: math
  reward_scale: 1.0
  use_reward_model: false
"""


def test_every_published_rlinf_key_loads(tmp_path):
    path = tmp_path / "rlinf.yaml"
    path.write_text(RLINF_STYLE)
    notes: list[str] = []
    cfg = load_config(path, notes=notes)
    assert cfg.algorithm.kl_penalty == "low_var_kl"
    assert cfg.env.train.simulator_type == "maniskill"
    assert cfg.rollout.rollout_backend == "huggingface"
    assert cfg.actor.fsdp_config.mixed_precision.param_dtype == "bf16"
    assert cfg.env.train.init_params.camera_heights == 128
    assert len(notes) == 3


def test_hydra_sections_get_an_explanation():
    with pytest.raises(ConfigError) as err:
        load_config({"defaults": ["base"], "hydra": {"run": {"dir": "."}}})
    text = str(err.value)
    assert "unknown config key 'defaults'" in text and "Hydra" in text
    assert "unknown config key 'hydra'" in text
