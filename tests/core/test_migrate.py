"""Migration from RLinf: Hydra ``defaults`` composition, ``rlinf config migrate``, then ``rlinf config validate``.

The configs under ``tests/fixtures/rlinf_configs/`` reproduce the structure and keys of RLinf's
published math and embodied examples. After migration, ``validate`` passes with the first-party
plugins installed: every component those examples name (``megatron``, ``openvla_oft``, ``pi0`` as
``openpi``, ``maniskill``, ``frankasim``, the ``embodied`` flow, ...) is registered by one of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from omegaconf import OmegaConf
from rlinf_core import ConfigError
from rlinf_core.cli import main
from rlinf_core.config import load_config, migrate_config
from rlinf_core.config.compat import DROPPED, KEPT, MAPPED, UNKNOWN_REASON, UNSUPPORTED
from rlinf_core.config.migrate import COMPOSED, in_schema

pytest.importorskip("hydra", reason="needs the [hydra] extra of rlinf-core")

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rlinf_configs"
MATH = FIXTURES / "reasoning" / "config" / "math"
EMBODIED = FIXTURES / "embodiment" / "config"
EXAMPLES = {
    "grpo-fsdp": MATH / "qwen2.5-1.5b-grpo-fsdp.yaml",
    "grpo-megatron": MATH / "qwen2.5-1.5b-grpo-megatron.yaml",
    "ppo-megatron": MATH / "qwen2.5-1.5b-ppo-megatron.yaml",
    "reinpp-megatron": MATH / "qwen2.5-1.5b-reinpp-megatron.yaml",
    "maniskill-mlp": EMBODIED / "maniskill_ppo_mlp.yaml",
    "maniskill-openvlaoft": EMBODIED / "maniskill_ppo_openvlaoft.yaml",
    "libero10-openvlaoft": EMBODIED / "libero_10_grpo_openvlaoft.yaml",
    "metaworld50-pi0": EMBODIED / "metaworld_50_ppo_openpi.yaml",
    "frankasim-mlp": EMBODIED / "frankasim_ppo_mlp.yaml",
}

@pytest.fixture(autouse=True)
def embodied_path(monkeypatch):
    monkeypatch.setenv("EMBODIED_PATH", str(EMBODIED.parent))  # as RLinf's run_embodiment.sh exports it


def _leaf_keys(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaf_keys(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _migrate_cli(path: Path, out: Path) -> dict:
    result = CliRunner().invoke(main, ["config", "migrate", str(path), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_migrate_then_validate_each_published_example(name, tmp_path):
    src, out = EXAMPLES[name], tmp_path / "migrated.yaml"
    report = _migrate_cli(src, out)
    keys = report["keys"]
    # every key of the composed source is reported exactly once, and every rule-less key would show
    composed = migrate_config(src)
    source_keys = [k["key"] for k in keys if k["status"] not in (COMPOSED, "added") and not k["key"].startswith("hydra.")]
    assert len(source_keys) == len(set(source_keys))
    assert not [k["key"] for k in keys if k["reason"] == UNKNOWN_REASON]
    for k in keys:
        if k["status"] in (DROPPED, UNSUPPORTED):
            assert k["reason"], k
        if k["status"] == MAPPED:
            assert k["new_key"] and in_schema(k["new_key"]), k
    # the file holds the config and lists every dropped / unsupported key with its reason
    text = out.read_text()
    for k in keys:
        if k["status"] in (DROPPED, UNSUPPORTED):
            assert f" {k['key']} = " in text, k["key"]
    assert yaml.safe_load(text) == OmegaConf.to_container(OmegaConf.create(composed.config))
    # validate: keys, types, ranges, interpolations, placement and component names all pass
    result = CliRunner().invoke(main, ["config", "validate", str(out)])
    assert result.exit_code == 0, result.output
    cfg = load_config(out)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


def test_grpo_fsdp_keys_are_mapped_dropped_and_reported(tmp_path):
    m = migrate_config(EXAMPLES["grpo-fsdp"])
    by_key = {k.key: k for k in m.keys}
    assert by_key["../hybrid_engines/fsdp@actor.fsdp_config"].status == COMPOSED
    assert by_key["algorithm.kl_penalty_type"].new_key == "algorithm.kl_penalty"
    assert by_key["rollout.enforce_eager"].new_key == "rollout.vllm.enforce_eager"
    assert by_key["runner.output_dir"].new_key == "extra.runner.output_dir"  # an interpolation needs it
    assert by_key["actor.group_name"].status == DROPPED
    assert by_key["actor.fsdp_config.amp_autocast.enabled"].status == UNSUPPORTED  # on in this file
    assert by_key["rollout.cuda_graph_max_bs"].status == DROPPED and "CUDA-graph" in by_key["rollout.cuda_graph_max_bs"].reason
    assert by_key["reward.tokenizer.use_fast"].status == DROPPED  # repeats actor.tokenizer
    for key in ("actor.tokenizer.use_fast", "actor.tokenizer.trust_remote_code", "actor.optim.lr"):
        assert by_key[key].status == KEPT
    cfg = load_config(m.config)
    assert cfg.runner.logger.log_path == "../results/grpo-1.5b"
    assert cfg.runner.logger.experiment_name == "grpo-1.5b"
    assert cfg.algorithm.sampling_params.max_new_tokens == 4096 - 1024  # RLinf's ${subtract:...}
    assert cfg.rollout.return_logprobs is False  # ${not:${algorithm.recompute_logprobs}}
    assert cfg.actor.fsdp_config.mixed_precision.param_dtype == "fp16"  # the file overrides the group
    assert "strategy" not in cfg.actor.fsdp_config and "inference" not in m.config
    assert cfg.actor.tokenizer.use_fast is False and cfg.actor.tokenizer.trust_remote_code is True


def test_embodied_keys_groups_and_relative_interpolations():
    m = migrate_config(EXAMPLES["maniskill-mlp"])
    cfg = load_config(m.config)
    assert cfg.env.train.simulator_type == "maniskill" and cfg.env.train.total_num_envs == 256
    assert cfg.env.train.env_id == "PickCube-v1"  # init_params.id
    assert cfg.env.train.init_params.make_kwargs.sim_config.control_freq == 20
    assert cfg.env.train.video_cfg.video_base_dir == "../results/video/train"  # an interpolation into runner
    statuses = {k.key: k.status for k in m.keys}
    assert statuses["env.train.init_params.max_episode_steps"] == DROPPED  # ${..max_episode_steps}
    assert (cfg.actor.model.obs_dim, cfg.actor.model.action_dim, cfg.actor.model.hidden_dim) == (42, 8, 256)
    assert cfg.actor.model.add_value_head is True and cfg.actor.model.num_action_chunks == 1
    assert cfg.rollout.rollout_backend == "huggingface"
    assert cfg.rollout.weight_sync_bucket_mb == 128  # 134217728 bytes
    assert statuses["weight_syncer.type"] == UNSUPPORTED  # patch (delta) sync
    assert statuses["rollout.enable_cuda_graph"] == DROPPED
    assert statuses["env.train.wrap_obs_mode"] == UNSUPPORTED

    oft = migrate_config(EXAMPLES["maniskill-openvlaoft"])
    cfg = load_config(oft.config)
    assert cfg.algorithm.sampling_params.temperature == 1.0 and cfg.algorithm.sampling_params.top_k == -1
    assert cfg.actor.model.max_prompt_length == 30 and cfg.actor.model.num_action_chunks == 8
    statuses = {k.key: k.status for k in oft.keys}
    assert statuses["rollout.sampling_params.temperature_eval"] == UNSUPPORTED  # 0.6 != 1.0
    assert statuses["actor.model.lora_path"] == UNSUPPORTED
    # OpenVLA-OFT's own options: the ones the VLA plugin reads are moved to actor.model.config, the ones it
    # takes from the checkpoint or has no use for are dropped with the reason
    assert cfg.actor.model.config.use_proprio is False and "use_proprio" not in cfg.actor.model
    by_key = {k.key: k for k in oft.keys}
    assert by_key["actor.model.use_proprio"].new_key == "actor.model.config.use_proprio"
    for key in ("vocab_size", "hidden_size", "image_size"):
        assert "config.json" in by_key[f"actor.model.{key}"].reason and statuses[f"actor.model.{key}"] == DROPPED
    assert statuses["actor.model.trust_remote_code"] == DROPPED
    assert statuses["actor.model.num_images_in_input"] == UNSUPPORTED and "cameras" in by_key[
        "actor.model.num_images_in_input"].reason

    franka = migrate_config(EXAMPLES["frankasim-mlp"])
    cfg = load_config(franka.config)
    assert cfg.env.train.env_id == "PandaPickCube-v0" and cfg.env.eval.reward_coef == 1.0
    assert franka.config["env"]["eval"]["reward_coef"] == "${extra.algorithm.reward_coef}"
    assert cfg.rollout.weight_sync_bucket_mb == 512


def test_megatron_settings_go_to_the_megatron_section_and_batch_is_derived():
    m = migrate_config(EXAMPLES["ppo-megatron"])
    cfg = load_config(m.config)
    assert cfg.actor.megatron.tensor_model_parallel_size == 2 and cfg.actor.megatron.optim.use_distributed_optimizer
    assert cfg.actor.micro_batch_size == 16 and cfg.actor.global_batch_size == 256 * 1 // 1
    assert cfg.algorithm.value_clip == 0.5 and cfg.critic.use_critic_model is True
    assert cfg.actor.megatron.ckpt_convertor.tensor_model_parallel_size == 2  # ${actor.model.tp} followed the move
    by_key = {k.key: k for k in m.keys}
    assert by_key["runner.enable_dynamic_batch_size"].status == UNSUPPORTED  # true in this file
    assert by_key["critic.lr_sched.start_weight_decay"].status == UNSUPPORTED
    assert by_key["actor.global_batch_size"].status == "added"
    assert cfg.rollout.sglang.engine_kwargs.attention_backend == "triton"


def test_cli_without_output_prints_yaml_and_reports_on_stderr(tmp_path):
    result = CliRunner().invoke(main, ["config", "migrate", str(EXAMPLES["reinpp-megatron"])])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Migrated from the RLinf config")
    assert "not supported yet algorithm.reinpp_kl_beta = 0.001" in result.stderr
    assert "algorithm.use_kl_loss=false" in result.stderr
    assert yaml.safe_load(result.stdout)["algorithm"]["adv_type"] == "reinpp"


def test_run_on_an_rlinf_file_says_to_migrate():
    with pytest.raises(ConfigError) as err:
        load_config(EXAMPLES["maniskill-mlp"])
    assert err.value.problems[-1].startswith(f"{str(EXAMPLES['maniskill-mlp'])!r} looks like an RLinf config: "
                                             "`rlinf config migrate")
    assert any("unknown config key 'env.group_name'" in p for p in err.value.problems)


# ------------------------------------------------------------------- composition of our own configs

def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_own_config_composes_groups_packages_overrides_and_searchpath(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    _write(shared, {"optim/slow.yaml": "lr: 1.0e-6\nweight_decay: 0.1\n", "optim/fast.yaml": "lr: 1.0e-4\n"})
    _write(tmp_path / "exp", {
        "algo/grpo.yaml": "adv_type: grpo\ngroup_size: 4\n",
        "run.yaml": "defaults:\n  - algo/grpo@algorithm\n  - optim@actor.optim: slow\n  - _self_\n"
                    "hydra:\n  searchpath:\n    - file://${oc.env:SHARED_GROUPS}\nalgorithm:\n  group_size: 8\n",
    })
    monkeypatch.setenv("SHARED_GROUPS", str(shared))
    notes: list[str] = []
    cfg = load_config(tmp_path / "exp" / "run.yaml", ["actor.optim.lr=3.0e-6"], notes=notes)
    assert cfg.algorithm.adv_type == "grpo" and cfg.algorithm.group_size == 8  # _self_ last: the file wins
    assert cfg.actor.optim.weight_decay == 0.1 and cfg.actor.optim.lr == 3.0e-6  # group from the search path
    assert any("composed" in n for n in notes)
    monkeypatch.delenv("SHARED_GROUPS")
    with pytest.raises(ConfigError, match=r"hydra.searchpath uses \$\{oc.env:SHARED_GROUPS\}, which is not set: set "
                                          r"SHARED_GROUPS"):
        load_config(tmp_path / "exp" / "run.yaml")


def test_override_entry_in_a_child_config(tmp_path):
    _write(tmp_path, {
        "optim/slow.yaml": "lr: 1.0e-6\n", "optim/fast.yaml": "lr: 1.0e-4\n",
        "base.yaml": "defaults:\n  - optim@actor.optim: slow\n  - _self_\nrunner:\n  max_epochs: 2\n",
        "child.yaml": "defaults:\n  - base\n  - override optim@actor.optim: fast\n  - _self_\n",
    })
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg.actor.optim.lr == 1.0e-4 and cfg.runner.max_epochs == 2


def test_composition_errors_are_one_line(tmp_path):
    _write(tmp_path, {"bad.yaml": "defaults:\n  - env/nowhere@env.train\n"})
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bad.yaml")
    assert len(err.value.problems) == 1 and "Could not load 'env/nowhere'" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_hydra_gives_the_pip_line(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hydra(name, *args, **kwargs):
        if name == "hydra" or name.startswith("hydra."):
            raise ImportError("No module named 'hydra'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hydra)
    _write(tmp_path, {"exp.yaml": "defaults:\n  - _self_\nrunner:\n  max_epochs: 2\n"})
    with pytest.raises(ConfigError, match=r"needs hydra-core\. Fix: pip install 'rlinf-core\[hydra\]'"):
        load_config(tmp_path / "exp.yaml")


def test_references_follow_moved_keys_relative_ones_included():
    m = migrate_config({
        "rollout": {"backend": "huggingface", "my_len": 48, "sampling_params": {"max_new_tokens": "${..my_len}"}},
        "env": {"train": {"max_episode_steps": 7, "init_params": {"camera_heights": "${..max_episode_steps}"}}},
    })
    assert m.config["algorithm"]["sampling_params"]["max_new_tokens"] == "${extra.rollout.my_len}"
    assert m.config["env"]["train"]["init_params"]["camera_heights"] == "${..max_episode_steps}"  # nothing moved
    cfg = load_config(m.config)
    assert cfg.algorithm.sampling_params.max_new_tokens == 48 and cfg.env.train.init_params.camera_heights == 7
    assert {k.key: k.new_key for k in m.keys}["rollout.my_len"] == "extra.rollout.my_len"


def test_migrate_applies_rlinf_overrides_before_mapping(tmp_path):
    _write(tmp_path, {
        "optim/slow.yaml": "lr: 1.0e-6\n", "optim/fast.yaml": "lr: 1.0e-4\n",
        "exp.yaml": "defaults:\n  - optim@actor.optim: slow\n  - _self_\nrollout:\n  backend: huggingface\n",
        "plain.yaml": "rollout:\n  backend: huggingface\n",
    })
    # a config-group override and a key override under RLinf's own name (rollout.backend -> rollout.rollout_backend)
    result = CliRunner().invoke(main, ["config", "migrate", str(tmp_path / "exp.yaml"), "optim@actor.optim=fast",
                                       "rollout.backend=vllm", "--json"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)["config"]
    assert config["actor"]["optim"]["lr"] == 1.0e-4 and config["rollout"]["rollout_backend"] == "vllm"
    m = migrate_config(tmp_path / "plain.yaml", ["rollout.backend=sglang", "+runner.max_steps=3"])
    assert m.config["rollout"]["rollout_backend"] == "sglang" and m.config["runner"]["max_steps"] == 3
    with pytest.raises(ConfigError, match=r"override 'env/train=libero_10': a config group .* needs a 'defaults' list"):
        migrate_config(tmp_path / "plain.yaml", ["env/train=libero_10"])
    with pytest.raises(ConfigError, match=r"override 'runner.max_steps': expected key=value"):
        migrate_config(tmp_path / "plain.yaml", ["runner.max_steps"])
