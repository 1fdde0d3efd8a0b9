"""The ``sglang`` rollout engine on a CUDA GPU: log-probs, in-place weight update, offload, finish reasons.

``@pytest.mark.gpu``: skipped without CUDA (and without sglang, whose PyPI build is CUDA-only).
bfloat16 (SGLang's fast attention kernels do not take float32), so log-probs are compared to a
float32 transformers forward by their mean error, and a weight update must move them by far more.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu
pytest.importorskip("sglang")

import torch  # noqa: E402
from engine_helpers import perturbed_state  # noqa: E402
from rlinf_core import get_plugins  # noqa: E402
from rlinf_core.config import load_config  # noqa: E402
from rlinf_core.interfaces import SamplingParams, check_conformance  # noqa: E402

T = 0.8
PROMPTS = [[5, 6, 7, 8], [20, 21], [30, 31, 32, 33, 34, 35]]
#: bf16 engine vs fp32 reference: mean |error| per token.
BF16_MEAN_ATOL = 0.05


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from rlinf_backends_fsdp.tiny import save_tiny_model

    # head size 64: supported by every SGLang attention backend
    return str(save_tiny_model(tmp_path_factory.mktemp("sgl") / "m", hidden_size=256, num_heads=4, num_kv_heads=2, seed=2))


@pytest.fixture(scope="module")
def hf_model(model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).cuda().eval()


@pytest.fixture(scope="module")
def engine(model_dir):
    cfg = load_config({"rollout": {"rollout_backend": "sglang", "gpu_memory_utilization": 0.3,
                                   "model": {"model_path": model_dir, "precision": "bf16"},
                                   "sglang": {"max_model_len": 256}}})
    cls = get_plugins().registries["rollout_engine"].load("sglang")
    eng = cls(cfg, device="cuda:0")
    yield eng
    eng.close()


def _mean_error(model, out, temperature):
    errors = []
    for prompt, response, lps in zip(out.prompt_ids, out.response_ids, out.response_logprobs, strict=True):
        ids = torch.tensor([prompt + response], device="cuda")
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1:-1].float() / temperature
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(response, device="cuda")[:, None])[:, 0]
        errors.extend((ref.cpu() - torch.tensor(lps)).abs().tolist())
    return sum(errors) / len(errors)


def test_conforms_and_generates_with_logprobs(engine, hf_model):
    assert check_conformance("rollout_engine", type(engine)) == []
    out = engine.generate(PROMPTS, SamplingParams(temperature=T, max_new_tokens=16))
    assert out.weight_version == 0 and out.prompt_ids == PROMPTS
    for ids, lps, reason in zip(out.response_ids, out.response_logprobs, out.finish_reasons, strict=True):
        assert len(ids) == len(lps) and 1 <= len(ids) <= 16
        assert reason == "length" if len(ids) == 16 and ids[-1] not in engine.eos_ids else reason == "stop"
    assert _mean_error(hf_model, out, T) < BF16_MEAN_ATOL


def test_update_weights_from_tensor_in_place(engine, hf_model):
    import copy

    state = perturbed_state(hf_model, 0.5, seed=3)
    new_model = copy.deepcopy(hf_model)
    new_model.load_state_dict(state)
    sp = SamplingParams(temperature=T, max_new_tokens=16)
    before = engine.generate(PROMPTS, sp)
    assert _mean_error(new_model, before, T) > 10 * BF16_MEAN_ATOL  # the check bites
    engine.update_weights(iter(state.items()), version=1)  # CUDA tensors: sent as CUDA IPC handles
    after = engine.generate(PROMPTS, sp)
    assert after.weight_version == engine.weight_version == 1
    assert _mean_error(new_model, after, T) < BF16_MEAN_ATOL
    engine.update_weights(hf_model.state_dict().items(), version=2)  # back, for the next tests
    assert _mean_error(hf_model, engine.generate(PROMPTS, sp), T) < BF16_MEAN_ATOL


def test_offload_frees_gpu_memory_and_onload_restores_the_weights(engine, hf_model):
    free_before = torch.cuda.mem_get_info()[0]
    engine.offload()
    assert torch.cuda.mem_get_info()[0] > free_before  # KV cache and weights released
    engine.onload()
    out = engine.generate(PROMPTS, SamplingParams(temperature=T, max_new_tokens=8))
    assert _mean_error(hf_model, out, T) < BF16_MEAN_ATOL  # sleep_level 1: weights backed up and restored


def test_stop_token_kept_and_greedy_logprobs_at_temperature_one(engine, hf_model):
    greedy = engine.generate(PROMPTS[:1], SamplingParams(do_sample=False, max_new_tokens=8))
    tokens = greedy.response_ids[0]
    assert greedy.finish_reasons == ["length"] and len(tokens) == 8
    assert _mean_error(hf_model, greedy, 1.0) < BF16_MEAN_ATOL
    stop = tokens[2]
    stopped = engine.generate(PROMPTS[:1], SamplingParams(do_sample=False, max_new_tokens=8, stop_token_ids=(stop,)))
    assert stopped.finish_reasons == ["stop"] and stopped.response_ids[0] == tokens[:tokens.index(stop) + 1]
    no_lp = engine.generate(PROMPTS[:1], SamplingParams(do_sample=False, max_new_tokens=8, stop_token_ids=(stop,),
                                                        logprobs=False))
    assert no_lp.response_logprobs is None and no_lp.response_ids == stopped.response_ids

