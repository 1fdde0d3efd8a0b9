"""The rlinf conformance kit on ``tiny_vla``, and tests of its tokenizer, its use of the instruction and image,
and the errors its config keys give."""

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from omegaconf import OmegaConf
from rlinf_core.config import load_config, validate_config
from rlinf_core.errors import ConfigError
from rlinf_core.plugins import get_plugins
from rlinf_core.testing import PolicyPluginTests
from rlinf_vla_example.options import TinyVLAOptions, read_tiny_vla_options
from rlinf_vla_example.policy import TinyVLAPolicy
from rlinf_vla_example.tokenizer import PAD, START, UNK, CharTokenizer

KEYS = ("conv_channels, pooled_size, text_dim, text_layers, text_heads, charset, max_text_length, trunk_dim, "
        "camera, use_state, instruction")
SMALL = {"conv_channels": [8, 8], "pooled_size": 2, "text_dim": 16, "text_layers": 1, "text_heads": 2, "trunk_dim": 32}
CHARSET = "abcdefghijklmnopqrstuvwxyz "
OBS = spaces.Dict({
    "state": spaces.Box(-1.0, 1.0, (2,), np.float32),
    "images": spaces.Dict({"image": spaces.Box(0, 255, (16, 16, 3), np.uint8)}),
    "instruction": spaces.Text(24, min_length=1, charset=CHARSET),
})
ACT = spaces.Box(-1.0, 1.0, (2,), np.float32)


class TestTinyVLAChunksConformance(PolicyPluginTests):
    component = "tiny_vla"
    config = {"num_action_chunks": 3, "add_value_head": True, "log_std_init": -0.5, "config": SMALL}
    observation_space = OBS
    action_space = ACT
    instructions = ["move to the red target", "move to the blue target", "go"]


class TestTinyVLASingleStepConformance(PolicyPluginTests):
    component = "vla_example:tiny_vla"  # the qualified name resolves too
    # no value head, no state, no instruction in the observations: the configured one is used
    config = {"config": {**SMALL, "text_layers": 2, "use_state": False, "instruction": "push the cube left"}}
    observation_space = spaces.Dict({"images": spaces.Dict({"front": spaces.Box(0, 255, (12, 12, 3), np.uint8)})})
    action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)


def make(config=None, obs_space=OBS, act_space=ACT, seed=0, **model):
    torch.manual_seed(seed)
    return TinyVLAPolicy({"config": {**SMALL, **(config or {})}, **model}, observation_space=obs_space,
                         action_space=act_space)


# ----------------------------------------------------------------------------- tokenizer


def test_tokenizer_ids_are_hand_computable():
    tok = CharTokenizer("cab ", max_length=4)  # sorted: ' ' a b c -> 3 4 5 6
    assert (PAD, UNK, START, tok.vocab_size) == (0, 1, 2, 7)
    assert tok.encode("Cab d") == [START, 6, 4, 5, 3]  # lowered (the charset has no capitals), cut to 4 characters
    assert tok.encode("ax") == [START, 4, UNK]
    assert tok.batch(["ab", ""]) == [[START, 4, 5], [START, PAD, PAD]]
    assert CharTokenizer("aA", 8).encode("Aa") == [START, 3, 4]  # a charset with capitals keeps the case ('A' < 'a')


def test_the_vocabulary_comes_from_the_env_text_space_unless_configured():
    policy = make()
    assert policy.tokenizer.vocab_size == 3 + len(CHARSET) and policy.tokenizer.max_length == 24
    assert policy.text.embed.num_embeddings == 3 + len(CHARSET) and policy.text.position.shape[0] == 25
    no_text = spaces.Dict({"images": OBS["images"]})
    policy = make({"charset": "xyz", "max_text_length": 5}, obs_space=no_text)
    assert policy.tokenizer.vocab_size == 6 and policy.tokenizer.max_length == 5
    assert make(obs_space=no_text).tokenizer.vocab_size == 3 + 26 + 10 + 5  # the default charset, max 64 characters


# ----------------------------------------------------------------------------- instruction and image


def _obs(n, instruction, seed=0):
    rng = np.random.default_rng(seed)
    return {"state": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
            "images": {"image": rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)},
            "instruction": [instruction] * n if isinstance(instruction, str) else instruction}


def test_the_instruction_changes_the_action_distribution():
    policy = make(num_action_chunks=2, add_value_head=True)
    red, blue = _obs(4, "move to the red target"), _obs(4, "move to the blue target")
    a_red = policy.sample(red, deterministic=True).actions
    assert a_red.shape == (4, 2, 2)
    torch.testing.assert_close(policy.sample(red, deterministic=True).actions, a_red)
    assert (policy.sample(blue, deterministic=True).actions - a_red).abs().amax(dim=(1, 2)).min() > 1e-4
    # the same sampled actions are more or less likely under another instruction
    out = policy.sample(red)
    other = policy.evaluate(blue, out.actions)["log_probs"]
    assert not torch.allclose(other, out.log_probs, atol=1e-5)


def test_log_probs_are_those_of_the_gaussian_and_values_match_sample():
    policy = make(num_action_chunks=2, add_value_head=True, log_std_init=-0.5)
    obs = _obs(3, "move to the green target")
    out = policy.sample(obs, deterministic=True)  # the mean: each dim scores -log(std) - log(2 pi) / 2
    expected = torch.full((3, 2), 2 * (0.5 - 0.5 * math.log(2 * math.pi)))
    torch.testing.assert_close(out.log_probs, expected)
    shifted = policy.evaluate(obs, out.actions + 1.0)  # one std is exp(-0.5): z = exp(0.5) in every dim
    torch.testing.assert_close(shifted["log_probs"], expected - 2 * 0.5 * math.exp(0.5) ** 2, atol=1e-5, rtol=0)
    torch.testing.assert_close(shifted["entropy"], torch.full((3, 2), 2 * (0.5 + 0.5 * math.log(2 * math.pi) - 0.5)))
    torch.testing.assert_close(policy.values(obs).detach(), out.values)


def _scene(left: str) -> np.ndarray:
    """A 16x16 image with a red block on the ``left`` side and a green one on the other."""
    img = np.zeros((16, 16, 3), np.uint8)
    red, green = (slice(6, 10), slice(1, 5)), (slice(6, 10), slice(11, 15))
    if left != "red":
        red, green = green, red
    img[red] = (230, 40, 40)
    img[green] = (40, 200, 60)
    return img


def test_it_learns_an_action_that_needs_both_the_instruction_and_the_image():
    """Move towards the named colour, whose side the image shows: neither input alone decides (4 cases)."""
    policy = make(num_action_chunks=1, log_std_init=-1.0)
    cases = [(colour, left) for colour in ("red", "green") for left in ("red", "green")]
    obs = {"images": {"image": np.stack([_scene(left) for _, left in cases])},
           "state": np.zeros((4, 2), np.float32),
           "instruction": [f"move to the {colour} target" for colour, _ in cases]}
    target = torch.tensor([[-0.8 if colour == left else 0.8, 0.0] for colour, left in cases])
    optim = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(300):
        loss = -policy.evaluate(obs, target)["log_probs"].mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    actions = policy.sample(obs, deterministic=True).actions
    torch.testing.assert_close(actions, target, atol=0.15, rtol=0)


# ----------------------------------------------------------------------------- options and errors


@pytest.mark.parametrize(("config", "message"), [
    ({"text_dims": 8},
     f"unknown config key 'actor.model.config.text_dims'. Did you mean 'text_dim' or 'text_heads' or 'text_layers'? "
     f"Valid keys of actor.model.config: {KEYS}"),
    ({"text_dim": 1}, "actor.model.config.text_dim: must be >= 2, got 1"),
    ({"text_dim": 16, "text_heads": 3}, "actor.model.config.text_heads: must divide text_dim (16), got 3"),
    ({"conv_channels": []},
     "actor.model.config.conv_channels: needs at least one layer and every channel count >= 1, got []"),
    ({"use_state": "maybe"}, "config key 'actor.model.config.use_state': Value 'maybe' is not a valid bool (type str)"),
])
def test_bad_options_are_named_when_the_policy_is_built(config, message):
    with pytest.raises(ConfigError) as err:
        TinyVLAPolicy({"config": config}, observation_space=OBS, action_space=ACT)
    assert err.value.problems == [message]


def test_options_are_read_from_the_run_config_section():
    cfg = OmegaConf.create({"actor": {"model": {"model_type": "tiny_vla", "config": {"text_dim": 8, "camera": None}}}})
    opts = read_tiny_vla_options(cfg.actor.model)
    assert opts == TinyVLAOptions(text_dim=8)  # null: the default
    assert (opts.conv_channels, opts.trunk_dim, opts.camera, opts.use_state) == ([16, 32, 32], 128, None, True)


def test_space_errors_name_the_key_to_change():
    two_cams = spaces.Dict({"images": spaces.Dict({"a": OBS["images"]["image"], "b": OBS["images"]["image"]})})
    with pytest.raises(ConfigError, match=r"actor\.model\.config\.camera: the env has several cameras \['a', 'b'\]"):
        make(obs_space=two_cams)
    with pytest.raises(ConfigError, match=r"actor\.model\.config\.camera: 'c' is not a camera of the env"):
        make({"camera": "c"}, obs_space=two_cams)
    with pytest.raises(ConfigError, match=r"needs camera images and the env gives none"):
        make(obs_space=spaces.Dict({"state": OBS["state"]}))
    with pytest.raises(ConfigError, match=r"flat continuous \(Box\) action space"):
        make(act_space=spaces.Discrete(3))
    policy = make(obs_space=spaces.Dict({"images": OBS["images"]}))
    with pytest.raises(ConfigError, match=r"actor\.model\.config\.instruction: the env gives no obs\['instruction'\]"):
        policy.sample({"images": _obs(2, "x")["images"]})


def test_rlinf_config_validate_checks_actor_model_config():
    plugins = get_plugins(strict=False)
    data = {"actor": {"model": {"model_type": "tiny_vla", "config": {"text_dim": 16, "trunk_dimm": 64}}}}
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(data, plugins=plugins), plugins)
    assert err.value.problems == [f"unknown config key 'actor.model.config.trunk_dimm'. Did you mean 'trunk_dim'? "
                                  f"Valid keys of actor.model.config: {KEYS}"]
    data["actor"]["model"]["config"] = {"text_dim": 16, "trunk_dim": 64}
    validate_config(load_config(data, plugins=plugins), plugins)


def test_the_rlinf_command_reports_a_misspelt_key(tmp_path):
    pytest.importorskip("rlinf_cli", reason="`rlinf config` comes with rlinf-cli")
    from click.testing import CliRunner
    from rlinf_core.cli import main

    path = tmp_path / "exp.yaml"
    path.write_text("actor:\n  model:\n    model_type: tiny_vla\n    config: {text_layer: 2}\n")
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 1, result.output
    assert ("unknown config key 'actor.model.config.text_layer'. Did you mean 'text_layers' or 'text_heads'? "
            f"Valid keys of actor.model.config: {KEYS}") in result.output
    path.write_text(path.read_text().replace("text_layer:", "text_layers:"))
    result = CliRunner().invoke(main, ["config", "validate", str(path), "actor.model.config.text_dim=64"])
    assert result.exit_code == 0, result.output
