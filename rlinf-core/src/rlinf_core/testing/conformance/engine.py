"""``RolloutEnginePluginTests``: the :class:`~rlinf_core.interfaces.RolloutEngine` contract of a ``rollout_engine``.

Checks: one row per prompt, in order, with the prompt echoed; at most ``max_new_tokens`` response
tokens, ``finish_reasons`` consistent with the lengths; one finite log-prob <= 0 per response token
(``None`` when not requested); seeded sampling and greedy decoding are reproducible; weight updates
change the outputs and the reported version; offload / onload keep the outputs. Needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from rlinf_core.testing.conformance.base import PluginTests, plain_to_config


class RolloutEnginePluginTests(PluginTests):
    """Subclass as ``class TestMyEngine(RolloutEnginePluginTests)``; set ``component`` and the model.

    - :meth:`make_config` returns the experiment config (a dict) the engine is built with; the
      default returns ``config``. Override it to write a small model under ``workdir`` first.
    - ``prompts``: token-id lists valid for that model; ``max_new_tokens`` (8).
    - :meth:`new_weights`: ``(name, tensor)`` pairs, with the names your training backend exports,
      that differ from the loaded weights; the weight-sync check is skipped until you define it.
    """

    kind = "rollout_engine"
    config: ClassVar[Mapping[str, Any]] = {}
    prompts: ClassVar[list[list[int]]] = [[3, 4, 5], [6], [7, 8, 9, 10], [3, 3]]
    max_new_tokens: ClassVar[int] = 8

    def make_config(self, workdir: Path) -> Mapping[str, Any]:
        return self.config

    def new_weights(self, engine: Any) -> Iterable[tuple[str, Any]]:
        raise NotImplementedError

    @pytest.fixture
    def engine(self, tmp_path: Path) -> Any:
        cls = self.load_target()
        engine = cls(plain_to_config(self.make_config(tmp_path)), rank=0, world_size=1, device="cpu")
        yield engine
        engine.close()

    def sampling(self, **kwargs: Any) -> Any:
        from rlinf_core.interfaces import SamplingParams

        return SamplingParams(**{"max_new_tokens": self.max_new_tokens, "seed": 0, **kwargs})

    # ------------------------------------------------------------------ tests

    def test_generate_one_row_per_prompt(self, engine: Any) -> None:
        from rlinf_core.interfaces import GenerationOutput

        out = engine.generate(self.prompts, self.sampling())
        assert isinstance(out, GenerationOutput), f"generate() must return GenerationOutput, got {type(out).__name__}"
        n = len(self.prompts)
        assert [list(p) for p in out.prompt_ids] == [list(p) for p in self.prompts], "prompt_ids must echo the prompts, in order"
        assert len(out.response_ids) == len(out.finish_reasons) == n, "one response and finish reason per prompt"
        assert out.response_logprobs is not None and len(out.response_logprobs) == n, "log-probs were requested"
        for i, (resp, lps, why) in enumerate(zip(out.response_ids, out.response_logprobs, out.finish_reasons, strict=True)):
            assert all(isinstance(t, int) for t in resp), f"row {i}: response_ids must be ints"
            assert len(resp) <= self.max_new_tokens, f"row {i}: {len(resp)} tokens > max_new_tokens={self.max_new_tokens}"
            assert why in ("stop", "length"), f"row {i}: finish reason {why!r} is not 'stop' or 'length'"
            if len(resp) < self.max_new_tokens:
                assert why == "stop", f"row {i}: {len(resp)} < max_new_tokens tokens must finish with 'stop'"
            assert len(lps) == len(resp), f"row {i}: {len(lps)} log-probs for {len(resp)} tokens"
            assert all(math.isfinite(v) and v <= 1e-6 for v in lps), f"row {i}: log-probs must be finite and <= 0: {lps}"
        assert isinstance(out.weight_version, int)

    def test_no_logprobs_when_not_requested(self, engine: Any) -> None:
        out = engine.generate(self.prompts, self.sampling(logprobs=False))
        assert out.response_logprobs is None, "response_logprobs must be None when SamplingParams.logprobs is False"

    def test_seeded_sampling_and_greedy_decoding_are_reproducible(self, engine: Any) -> None:
        a = engine.generate(self.prompts, self.sampling(seed=3))
        b = engine.generate(self.prompts, self.sampling(seed=3))
        assert a.response_ids == b.response_ids, "the same SamplingParams.seed must give the same responses"
        g1 = engine.generate(self.prompts, self.sampling(do_sample=False, seed=None))
        g2 = engine.generate(self.prompts, self.sampling(do_sample=False, seed=None))
        assert g1.response_ids == g2.response_ids, "greedy decoding (do_sample=False) must be deterministic"

    def test_offload_and_onload_keep_the_outputs(self, engine: Any) -> None:
        before = engine.generate(self.prompts, self.sampling(do_sample=False, seed=None))
        engine.offload()
        engine.onload()
        after = engine.generate(self.prompts, self.sampling(do_sample=False, seed=None))
        assert before.response_ids == after.response_ids, "offload() then onload() changed the greedy outputs"

    def test_update_weights_changes_outputs_and_version(self, engine: Any) -> None:
        try:
            weights = list(self.new_weights(engine))
        except NotImplementedError:
            pytest.skip("define new_weights(engine) to check weight sync")
        assert engine.weight_version == 0, "a new engine reports weight_version 0"
        before = engine.generate(self.prompts, self.sampling(seed=1))
        engine.update_weights(iter(weights), version=5)
        after = engine.generate(self.prompts, self.sampling(seed=1))
        assert engine.weight_version == 5 and after.weight_version == 5, "the version given to update_weights must be reported"
        assert (before.response_ids, before.response_logprobs) != (after.response_ids, after.response_logprobs), (
            "update_weights() changed nothing in the outputs")
