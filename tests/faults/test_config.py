"""Bad configs fail at ``rlinf config validate`` / ``show``, not mid-run: one line per fault naming the key.

Each case goes through the Python API (``load_config`` / ``validate_config``) and the command line
(exit code 1, a single ``Error:`` line, no traceback).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner
from omegaconf import OmegaConf
from rlinf_core import ConfigError
from rlinf_core.cli import main
from rlinf_core.config import load_config, validate_config
from rlinf_core.config.ranges import Range
from rlinf_core.plugins import get_plugins
from rlinf_core.runtime.placement import parse_component_placement


def _problems(overrides=(), data=None, *, validate=False, notes=None) -> list[str]:
    try:
        cfg = load_config(data or {}, list(overrides))
        if validate:
            validate_config(cfg, get_plugins(), notes)
    except ConfigError as exc:
        return exc.problems
    return []


def _cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _assert_one_error_line(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- value ranges

OUT_OF_RANGE = [
    ("cluster.num_nodes", "0", "> 0"),
    ("cluster.num_devices_per_node", "-2", "> 0"),
    ("actor.micro_batch_size", "0", "> 0"),
    ("actor.global_batch_size", "-4", "> 0"),
    ("algorithm.group_size", "0", "> 0"),
    ("env.train.group_size", "0", "> 0"),
    ("rollout.pipeline_stage_num", "0", "> 0"),
    ("env.train.total_num_envs", "0", "> 0"),
    ("env.eval.total_num_envs", "-3", "> 0"),
    ("data.rollout_batch_size", "0", "> 0"),
    ("algorithm.n_minibatches", "0", "> 0"),
    ("algorithm.update_epoch", "0", "> 0"),
    ("runner.max_steps", "0", "> 0, or -1"),
    ("actor.optim.lr", "-0.5", ">= 0"),
    ("critic.optim.lr", "-1.0", ">= 0"),
    ("algorithm.sampling_params.top_p", "1.5", "> 0 and <= 1"),
    ("algorithm.sampling_params.top_p", "0.0", "> 0 and <= 1"),
    ("algorithm.sampling_params.temperature", "-0.1", ">= 0"),
    ("rollout.gpu_memory_utilization", "1.2", "> 0 and <= 1"),
    ("rollout.gpu_memory_utilization", "0.0", "> 0 and <= 1"),
    ("algorithm.ratio_clip_eps", "-0.2", ">= 0"),
    ("algorithm.clip_ratio_high", "-0.28", ">= 0"),
    ("algorithm.clip_ratio_c", "1.0", "> 1"),
    ("algorithm.gamma", "1.01", ">= 0 and <= 1"),
    ("algorithm.gae_lambda", "-0.5", ">= 0 and <= 1"),
    ("actor.optim.adam_beta2", "1.0", ">= 0 and < 1"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), OUT_OF_RANGE, ids=lambda v: str(v))
def test_a_value_out_of_range_names_the_key_and_the_range(key, value, allowed):
    assert _problems([f"{key}={value}"]) == [f"{key}: must be {allowed}, got {value}"]


@pytest.mark.parametrize("override", [
    "algorithm.sampling_params.top_p=1", "rollout.gpu_memory_utilization=1", "algorithm.gamma=0", "algorithm.gamma=1",
    "actor.optim.lr=0", "runner.max_steps=-1", "runner.max_steps=5", "algorithm.sampling_params.temperature=0",
    "cluster.num_devices_per_node=null", "algorithm.clip_ratio_c=3",
])
def test_values_on_the_edge_of_their_range_load(override):
    assert _problems([override]) == []


def test_every_problem_is_reported_at_once_one_line_each():
    problems = _problems(["cluster.num_nodes=0", "actor.optim.lr=-1", "algorithm.sampling_params.top_p=2"])
    assert problems == ["cluster.num_nodes: must be > 0, got 0",
                        "algorithm.sampling_params.top_p: must be > 0 and <= 1, got 2.0",
                        "actor.optim.lr: must be >= 0, got -1.0"]


def test_a_range_reached_through_an_interpolation_is_checked():
    assert _problems(["extra.n=-2", "actor.micro_batch_size=${extra.n}"]) == ["actor.micro_batch_size: must be > 0, got -2"]


def test_range_semantics():
    positive_or_off = Range(gt=0, also=(-1,))
    assert 1 in positive_or_off and -1 in positive_or_off and 0 not in positive_or_off and -2 not in positive_or_off
    assert float("nan") not in Range(ge=0) and True not in Range(ge=0) and "1" not in Range(ge=0)
    assert str(Range(gt=0, le=1)) == "> 0 and <= 1" and str(positive_or_off) == "> 0, or -1"


def test_global_batch_size_must_be_a_multiple_of_the_micro_batch_size():
    assert _problems(["actor.micro_batch_size=4", "actor.global_batch_size=10"]) == [
        "actor.global_batch_size (10) must be a multiple of actor.micro_batch_size (4): "
        "each optimizer step accumulates whole micro-batches"]
    assert _problems(["actor.micro_batch_size=4", "actor.global_batch_size=64"]) == []


def test_a_precision_name_is_checked_at_validate_time_for_every_model_section():
    assert _problems(["actor.model.precision=bf61", "rollout.model.precision=fp8"]) == [
        "actor.model.precision: unknown precision 'bf61'. Did you mean 'bf16'? Valid: fp32, bf16, fp16",
        "rollout.model.precision: unknown precision 'fp8'. Valid: fp32, bf16, fp16"]
    # the spellings every backend and policy accepts (one table: rlinf_core.config.precision)
    assert _problems(["actor.model.precision=bf16-mixed", "critic.model.precision=torch.float16",
                      "rollout.model.precision=32"]) == []


# ---------------------------------------------------------------------------- placement

def test_placement_out_of_range_counts_nodes_times_devices():
    spec = {"cluster": {"num_devices_per_node": 4, "component_placement": {"actor": "0-3", "rollout": "4-7"}}}
    assert _problems(data=spec, validate=True) == [
        "cluster.component_placement['rollout']: device 7 is out of range: there are 4 (0-3) "
        "(cluster.num_nodes 1 x cluster.num_devices_per_node 4)"]
    assert _problems(["cluster.num_nodes=2"], data=spec, validate=True) == []


@pytest.mark.parametrize(("placement", "overrides", "fragment"), [
    ({"actor": "3-1"}, [], "cluster.component_placement['actor']: range '3-1' runs backwards"),
    ({"actor": "0-1", "rolout": "2-3"}, [], "unknown worker group 'rolout'. Did you mean 'rollout'?"),
    ({"actor": "0-2", "rollout": "2-3"}, ["cluster.placement=disaggregated"],
     "cluster.placement=disaggregated needs separate devices, but 'actor' and 'rollout' both use device(s) 2"),
    ({"actor": "0-1", "rollout": "2-3"}, ["cluster.placement=collocated"],
     "cluster.placement=collocated puts every group on the same devices"),
    ({"actor": "0-1,1"}, [], "lists a rank twice"),
    ({"actor": "0-x"}, [], "cannot parse device '0-x'"),
    ({"actor": "all"}, ["cluster.placement=auto"],
     "cluster.placement=auto chooses the placement itself; remove cluster.component_placement"),
])
def test_bad_placement_is_caught_at_validate_time(placement, overrides, fragment):
    data = {"cluster": {"num_devices_per_node": 4, "component_placement": placement}}
    problems = _problems(overrides, data=data, validate=True)
    assert len(problems) == 1 and fragment in problems[0], problems


@pytest.mark.parametrize("placement", [{"actor": "3-1"}, {"actor": "0-5"}, {"actr": "0"}, {"actor": "0-1:0-2"}])
def test_placement_errors_are_the_runtimes_own(placement):
    """validate reports exactly what the Runtime's parser raises for the same spec."""
    with pytest.raises(ConfigError) as runtime_err:
        parse_component_placement(placement, 4)
    data = {"cluster": {"num_devices_per_node": 4, "component_placement": placement}}
    assert _problems(data=data, validate=True)[0].startswith(str(runtime_err.value))


def test_unknown_device_count_checks_everything_but_the_upper_bound():
    notes: list[str] = []
    spec = {"cluster": {"component_placement": {"actor,rollout": "all", "env": "40-47"}}}
    assert _problems(data=spec, validate=True, notes=notes) == []
    assert any("cluster.num_devices_per_node is unset" in n and "not against the number of devices" in n for n in notes)
    spec = {"cluster": {"placement": "disaggregated", "component_placement": {"actor": "all", "env": "4-7:0-1"}}}
    assert "both use device(s) 4-7" in _problems(data=spec, validate=True)[0]
    # `all:0-2` needs a device count divisible by 3: no false error for an unknown count
    spec = {"cluster": {"component_placement": {"actor": "all:0-2", "rollout": "4"}}}
    assert _problems(data=spec, validate=True) == []


def test_a_valid_placement_passes():
    data = {"cluster": {"num_devices_per_node": 4, "placement": "hybrid",
                        "component_placement": {"env": "0-1", "rollout,actor": "2-3"}}}
    assert _problems(data=data, validate=True) == []


# ---------------------------------------------------------------------------- YAML, interpolations, shape

@pytest.fixture
def yaml_file(tmp_path):
    def write(text: str, name: str = "exp.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def test_yaml_error_in_an_override_names_the_override(yaml_file):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["actor.micro_batch_size=4", "algorithm.adv_type=[unclosed"])
    assert str(err.value) == ("override 'algorithm.adv_type=[unclosed': the value is not valid YAML: did not find "
                              "expected ',' or ']' (while parsing a flow sequence); quote it to pass a string: "
                              "algorithm.adv_type='[unclosed'")
    _assert_one_error_line(_cli("config", "validate", yaml_file("{}"), "key=[unclosed"), "override 'key=[unclosed'")
    _assert_one_error_line(_cli("config", "show", yaml_file("{}"), "a.b={x"), "override 'a.b={x'", "not valid YAML")


def test_yaml_syntax_error_in_the_file_gives_line_and_column(yaml_file):
    path = yaml_file("actor:\n  micro_batch_size: 4\n  optim: {lr: 1\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML: line 4, column 1: did not find expected ',' or '}'"):
        load_config(path)
    _assert_one_error_line(_cli("config", "validate", path), "exp.yaml' is not valid YAML: line 4, column 1")
    dup = yaml_file("actor:\n  seed: 1\n  seed: 2\n", "dup.yaml")
    _assert_one_error_line(_cli("config", "validate", dup), "line 3, column 3: found duplicate key seed")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n---\n"])
def test_an_empty_file_is_an_error(yaml_file, text):
    path = yaml_file(text)
    with pytest.raises(ConfigError, match=r"config file '.*exp.yaml' is empty; write the sections to set"):
        load_config(path)
    _assert_one_error_line(_cli("config", "validate", path), "is empty", "'{}' to use every default")


def test_an_explicit_empty_mapping_means_every_default(yaml_file):
    result = _cli("config", "validate", yaml_file("{}\n"))
    assert result.exit_code == 0 and "valid" in result.output


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("3\n", "int")])
def test_a_file_that_is_not_a_mapping(yaml_file, text, kind):
    path = yaml_file(text)
    with pytest.raises(ConfigError, match=rf"must hold a mapping of sections \(cluster:, actor:, \.\.\.\), not a {kind}$"):
        load_config(path)
    _assert_one_error_line(_cli("config", "show", path), "must hold a mapping of sections")


def test_a_section_set_to_a_scalar_names_the_section(yaml_file):
    with pytest.raises(ConfigError) as err:
        load_config({"actor": 3})
    assert str(err.value).startswith("config key 'actor' is a section and must hold keys, not 3. "
                                     "Valid keys of actor: training_backend, micro_batch_size")
    with pytest.raises(ConfigError, match="config key 'actor.optim' is a section and must hold keys, not 'fast'"):
        load_config(None, ["actor.optim=fast"])
    _assert_one_error_line(_cli("config", "validate", yaml_file("actor: 3\n")), "config key 'actor' is a section")
    over_a_section = yaml_file("rollout:\n  pipeline_stage_num: 2\n", "section.yaml")
    _assert_one_error_line(_cli("config", "validate", over_a_section, "rollout=[1]"), "config key 'rollout' is a section")


def test_an_empty_section_means_its_defaults(yaml_file):
    cfg = load_config(yaml_file("actor:\n  # micro_batch_size: 4\ncritic:\n"))
    assert cfg.actor.micro_batch_size == 1 and cfg.critic.optim.lr == 1e-6


def test_wrong_type_is_one_line():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["cluster.component_placement=3"])
    assert str(err.value) == "config key 'cluster.component_placement': Cannot assign int to Dict[str, Any]"


def test_unresolvable_interpolations_name_their_keys(yaml_file, monkeypatch):
    monkeypatch.delenv("RLINF_TEST_UNSET", raising=False)
    path = yaml_file("actor:\n  optim:\n    lr: ${foo.bar}\n"
                     "runner:\n  logger:\n    log_path: runs/${oc.env:RLINF_TEST_UNSET}\n"
                     "data:\n  train_data_paths: [a.jsonl, '${extra.nope}']\n")
    cfg = load_config(path)  # loading leaves interpolations alone: `config show --no-resolve` prints them
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, get_plugins())
    assert sorted(err.value.problems) == [
        "config key 'actor.optim.lr': cannot resolve interpolation '${foo.bar}': Interpolation key 'foo.bar' not found",
        "config key 'data.train_data_paths[1]': cannot resolve interpolation '${extra.nope}': "
        "Interpolation key 'extra.nope' not found",
        "config key 'runner.logger.log_path': cannot resolve interpolation 'runs/${oc.env:RLINF_TEST_UNSET}': "
        "Environment variable 'RLINF_TEST_UNSET' not found; set RLINF_TEST_UNSET or give a default: "
        "${oc.env:RLINF_TEST_UNSET,default}",
    ]
    one = yaml_file("actor:\n  optim:\n    lr: ${foo.bar}\n", "one.yaml")
    for command in ("validate", "show"):
        _assert_one_error_line(_cli("config", command, one), "config key 'actor.optim.lr'", "'${foo.bar}'")
    env = yaml_file("algorithm:\n  adv_type: ${oc.env:RLINF_TEST_UNSET}\n", "env.yaml")
    for command in ("validate", "show"):
        _assert_one_error_line(_cli("config", command, env), "config key 'algorithm.adv_type'", "RLINF_TEST_UNSET")
    _assert_one_error_line(_cli("config", "validate", yaml_file("{}"), "actor.seed=${nope}"), "'actor.seed'")
    shown = _cli("config", "show", one, "--no-resolve")
    assert shown.exit_code == 0 and "lr: ${foo.bar}" in shown.output


def test_interpolation_of_the_wrong_type_is_reported():
    cfg = load_config(None, ["extra.x=abc", "actor.micro_batch_size=${extra.x}"])
    with pytest.raises(ConfigError, match=r"config key 'actor.micro_batch_size': cannot resolve interpolation "
                                          r"'\$\{extra.x\}': .*could not be converted to Integer"):
        validate_config(cfg, get_plugins())
    ok = load_config(None, ["extra.x=8", "actor.micro_batch_size=${extra.x}", "actor.global_batch_size=16"])
    validate_config(ok, get_plugins())
    assert OmegaConf.to_container(ok, resolve=True)["actor"]["micro_batch_size"] == 8


@pytest.mark.parametrize(("overrides", "fragment"), [
    (["cluster.num_devices_per_node=-2"], "cluster.num_devices_per_node: must be > 0, got -2"),
    (["rollout.gpu_memory_utilization=1.5"], "rollout.gpu_memory_utilization: must be > 0 and <= 1, got 1.5"),
    (["cluster.num_devices_per_node=2", "cluster.component_placement={actor: 0-3}"], "device 3 is out of range"),
])
def test_cli_validate_reports_ranges_and_placement_in_one_line(yaml_file, overrides, fragment):
    _assert_one_error_line(_cli("config", "validate", yaml_file("{}"), *overrides), fragment)


def test_console_script_prints_one_line_and_no_traceback(yaml_file):
    path = yaml_file("actor:\n  optim:\n    lr: -1\n")
    proc = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "config", "validate", path],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: actor.optim.lr: must be >= 0, got -1.0"
    assert "Traceback" not in proc.stdout + proc.stderr
