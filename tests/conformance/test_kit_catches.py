"""The conformance kit bites: each deliberately broken component fails exactly the checks that cover
what was broken, and its correct original passes them all.

The kit's classes run in one pytest subprocess over a generated test module (junit XML gives each
test's outcome), so that the expected failures do not fail this suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from rlinf_core.components import is_installed  # noqa: E402

HERE = Path(__file__).resolve().parent
HF = is_installed("transformers")

MODULE = '''
import numpy as np
from gymnasium import spaces
import broken_components as bc
from rlinf_core.testing import (AlgorithmPluginTests, EnvPluginTests, PlacementPluginTests, PolicyPluginTests,
                                RewardPluginTests, RolloutEnginePluginTests, TrainingBackendPluginTests)
from rlinf_envs_embodied.policies.mlp import MLPPolicy
from rlinf_algos.advantages import reinforce_plus_plus
from rlinf_algos.losses import ppo
from rlinf_algos.kl import k3
from rlinf_core.runtime.placement import collocated
from rlinf_core.rewards.exact_match import exact_match


def env(cls, **attrs):
    return type(f"Test{cls.__name__}", (EnvPluginTests,), {"target": cls, "config": {"images": True}, **attrs})


TestPointEnv = env(bc.PointEnv)
TestUnseededEnv = env(bc.UnseededEnv)
TestFloat64StateEnv = env(bc.Float64StateEnv)
TestTruncationAsTerminationEnv = env(bc.TruncationAsTerminationEnv)
TestNoFinalObservationEnv = env(bc.NoFinalObservationEnv)
TestChunkOnlyFirstStepEnv = env(bc.ChunkOnlyFirstStepEnv)
TestCHWImagesEnv = env(bc.CHWImagesEnv)
TestSilentBadActionsEnv = env(bc.SilentBadActionsEnv)

SPACES = {"observation_space": spaces.Dict({"state": spaces.Box(-np.inf, np.inf, (4,), np.float32)}),
          "action_space": spaces.Box(-1.0, 1.0, (2,), np.float32),
          "config": {"hidden_dim": 8, "num_layers": 1, "add_value_head": True}}


def policy(cls):
    return type(f"Test{cls.__name__}", (PolicyPluginTests,), {"target": cls, **SPACES})


TestMLPPolicy = policy(MLPPolicy)
TestOffLogProbPolicy = policy(bc.OffLogProbPolicy)
TestGradInSamplePolicy = policy(bc.GradInSamplePolicy)
TestDetachedCriticPolicy = policy(bc.DetachedCriticPolicy)
TestUnsavedBufferPolicy = policy(bc.UnsavedBufferPolicy)
TestNoisyDeterministicPolicy = policy(bc.NoisyDeterministicPolicy)


def algo(kind, fn, **attrs):
    return type(f"Test_{fn.__name__}", (AlgorithmPluginTests,), {"kind": kind, "target": staticmethod(fn), **attrs})


Test_reinforce_plus_plus = algo("advantage", reinforce_plus_plus)
Test_unmasked_returns = algo("advantage", bc.unmasked_returns)
Test_float32_returns = algo("advantage", bc.float32_returns)
Test_ppo = algo("policy_loss", ppo)
Test_unmasked_pg_loss = algo("policy_loss", bc.unmasked_pg_loss)
Test_wrong_sign_pg_loss = algo("policy_loss", bc.wrong_sign_pg_loss)
Test_k3 = algo("kl", k3)
Test_ratio_kl = algo("kl", bc.ratio_kl)
Test_row_normalised_kl = algo("kl", bc.row_normalised_kl)

PLACE = {"accepted": (({"actor,rollout": "0-1", "env": "0-1"}, 2),), "rejected": (({"actor": "0", "rollout": "0-1"}, 2),)}
TestCollocated = type("TestCollocated", (PlacementPluginTests,), {"target": staticmethod(collocated), **PLACE})
TestDroppingPlacement = type("TestDroppingPlacement", (PlacementPluginTests,),
                             {"target": staticmethod(bc.dropping_placement), **PLACE})
TestValueErrorPlacement = type("TestValueErrorPlacement", (PlacementPluginTests,),
                               {"target": staticmethod(bc.value_error_placement),
                                "accepted": (({"actor": "0", "rollout": "1"}, 2),), "rejected": PLACE["rejected"]})

CASES = {"cases": (("42", "42", 1.0), ("41", "42", 0.0), ("7", "8", 0.0))}
TestExactMatch = type("TestExactMatch", (RewardPluginTests,), {"target": staticmethod(exact_match), **CASES})
TestReversedReward = type("TestReversedReward", (RewardPluginTests,), {"target": staticmethod(bc.exact_match_reversed), **CASES})
'''

HF_MODULE = '''
import broken_backends as bb
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
from rlinf_backends_fsdp.hf_engine import HFRolloutEngine
from rlinf_backends_fsdp.tiny import save_tiny_model

VOCAB = "0123456789+= "


def tiny(workdir):
    path = workdir / "tiny"
    if not path.exists():
        save_tiny_model(path, vocab=VOCAB, hidden_size=32, num_heads=1, num_kv_heads=1, num_layers=1, seed=3)
    return str(path)


class EngineBase(RolloutEnginePluginTests):
    prompts = [[4, 5, 13, 6, 14], [7, 14]]

    def make_config(self, workdir):
        return {"actor": {"model": {"model_path": tiny(workdir)}}}

    def new_weights(self, engine):
        return [(n, p.detach() * 0.5) for n, p in engine.model.named_parameters()]


class BackendBase(TrainingBackendPluginTests):
    vocab_size = len(VOCAB) + 3

    def make_config(self, workdir):
        return {"actor": {"model": {"model_path": tiny(workdir)}, "micro_batch_size": 2, "global_batch_size": 4,
                          "optim": {"lr": 1e-2, "clip_grad": 0.0}}}


for cls in (HFRolloutEngine, bb.UnseededEngine, bb.ProbabilityEngine, bb.VersionlessEngine):
    globals()[f"Test{cls.__name__}"] = type(f"Test{cls.__name__}", (EngineBase,), {"target": cls})
for cls in (FSDPBackend, bb.NoopLoadBackend, bb.AscentBackend, bb.PaddingLeakBackend):
    globals()[f"Test{cls.__name__}"] = type(f"Test{cls.__name__}", (BackendBase,), {"target": cls})
'''

#: Broken class -> the tests that must fail on it (every other test of the class must pass or skip).
EXPECTED = {
    "TestUnseededEnv": {"test_same_seed_same_rollout", "test_sub_env_i_is_seeded_seed_plus_i", "test_a_chunk_equals_k_single_steps"},
    "TestFloat64StateEnv": {"test_reset_returns_obs_and_info", "test_step_shapes_and_dtypes", "test_a_chunk_equals_k_single_steps",
                            "test_truncation_at_the_time_limit_and_auto_reset", "test_images_are_uint8_hwc"},
    "TestTruncationAsTerminationEnv": {"test_truncation_at_the_time_limit_and_auto_reset"},
    "TestNoFinalObservationEnv": {"test_truncation_at_the_time_limit_and_auto_reset"},
    "TestChunkOnlyFirstStepEnv": {"test_a_chunk_equals_k_single_steps"},
    "TestCHWImagesEnv": {"test_reset_returns_obs_and_info", "test_step_shapes_and_dtypes", "test_a_chunk_equals_k_single_steps",
                         "test_truncation_at_the_time_limit_and_auto_reset", "test_images_are_uint8_hwc"},
    "TestSilentBadActionsEnv": {"test_actions_of_the_wrong_shape_fail_with_one_line"},
    "TestOffLogProbPolicy": {"test_evaluate_re_scores_sampled_actions"},
    # sampled actions that carry a graph cancel the mean's gradient in evaluate() as well
    "TestGradInSamplePolicy": {"test_sample_shapes_and_no_gradient", "test_gradients_reach_every_trainable_parameter"},
    "TestDetachedCriticPolicy": {"test_gradients_reach_every_trainable_parameter"},
    "TestUnsavedBufferPolicy": {"test_state_dict_round_trip"},
    "TestNoisyDeterministicPolicy": {"test_deterministic_sample_is_repeatable_and_seeded_sampling_too"},
    "Test_unmasked_returns": {"test_masked_positions_do_not_matter", "test_padding_columns_do_not_matter"},
    "Test_float32_returns": {"test_dtype_is_kept[float64]"},
    "Test_unmasked_pg_loss": {"test_masked_positions_do_not_matter", "test_padding_columns_do_not_matter",
                              "test_gradients_reach_valid_positions_only"},
    "Test_wrong_sign_pg_loss": {"test_gradient_at_ratio_one_favours_positive_advantages"},
    "Test_ratio_kl": {"test_kl_is_local_zero_at_agreement_and_finite"},
    "Test_row_normalised_kl": {"test_kl_is_local_zero_at_agreement_and_finite"},
    "TestDroppingPlacement": {"test_accepted_layouts_place_every_group", "test_rejected_layouts_raise_one_line_config_errors"},
    "TestValueErrorPlacement": {"test_rejected_layouts_raise_one_line_config_errors"},
    "TestReversedReward": {"test_cases_score_as_expected_in_order"},
    "TestUnseededEngine": {"test_seeded_sampling_and_greedy_decoding_are_reproducible"},
    "TestProbabilityEngine": {"test_generate_one_row_per_prompt"},
    "TestVersionlessEngine": {"test_update_weights_changes_outputs_and_version"},
    "TestNoopLoadBackend": {"test_checkpoint_round_trip_restores_the_model"},
    "TestAscentBackend": {"test_train_step_raises_the_likelihood_of_positive_advantages"},
    "TestPaddingLeakBackend": {"test_padding_tokens_do_not_change_log_probs"},
}
#: Correct originals: every test passes (or skips with a reason).
GOOD = ("TestPointEnv", "TestMLPPolicy", "Test_reinforce_plus_plus", "Test_ppo", "Test_k3", "TestCollocated", "TestExactMatch",
        "TestHFRolloutEngine", "TestFSDPBackend")


HF_CLASSES = {"TestHFRolloutEngine", "TestFSDPBackend", "TestUnseededEngine", "TestProbabilityEngine", "TestVersionlessEngine",
              "TestNoopLoadBackend", "TestAscentBackend", "TestPaddingLeakBackend"}


def _run_kit(work: Path, source: str) -> dict[str, dict[str, str]]:
    """``{class: {test: "passed" | "failed" | "skipped"}}`` from one pytest run of the generated module."""
    (work / "test_generated_kit.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    report = work / "report.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(work / "test_generated_kit.py"), "-q", "-p", "no:cacheprovider",
                           f"--junitxml={report}", "--rootdir", str(work)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert report.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, dict[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        status = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            status = "failed"
        elif case.find("skipped") is not None:
            status = "skipped"
        result.setdefault(cls, {})[case.get("name", "")] = status
    assert result, proc.stdout[-3000:]
    return result


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Outcomes of the torch / numpy components (about 10 s)."""
    return _run_kit(tmp_path_factory.mktemp("kit"), textwrap.dedent(MODULE))


@pytest.fixture(scope="module")
def hf_outcomes(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Outcomes of the huggingface engine and fsdp backend and their broken variants (about 40 s under load)."""
    if not HF:
        pytest.skip("transformers is not installed")
    return _run_kit(tmp_path_factory.mktemp("kit_hf"), textwrap.dedent(MODULE) + textwrap.dedent(HF_MODULE))


def _check_good(outcomes: dict[str, dict[str, str]], cls: str) -> None:
    failed = sorted(t for t, s in outcomes[cls].items() if s == "failed")
    assert not failed, f"{cls}: the kit fails a correct component on {failed}"
    assert sum(s == "passed" for s in outcomes[cls].values()) >= 3


def _check_broken(outcomes: dict[str, dict[str, str]], cls: str) -> None:
    failed = {t for t, s in outcomes[cls].items() if s == "failed"}
    assert failed == EXPECTED[cls], f"{cls}: failed {sorted(failed)}, expected {sorted(EXPECTED[cls])}"


@pytest.mark.parametrize("cls", [c for c in GOOD if c not in HF_CLASSES])
def test_correct_components_pass(outcomes, cls):
    _check_good(outcomes, cls)


@pytest.mark.parametrize("cls", sorted(c for c in EXPECTED if c not in HF_CLASSES))
def test_broken_components_fail_exactly_where_broken(outcomes, cls):
    _check_broken(outcomes, cls)


@pytest.mark.slow
@pytest.mark.parametrize("cls", sorted(HF_CLASSES))
def test_engine_and_backend_kit_catches_broken_variants(hf_outcomes, cls):
    if cls in EXPECTED:
        _check_broken(hf_outcomes, cls)
    else:
        _check_good(hf_outcomes, cls)
