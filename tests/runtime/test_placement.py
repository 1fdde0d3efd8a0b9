"""Parsing cluster.component_placement and the placement strategies."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rlinf_core import ConfigError, get_plugins
from rlinf_core.runtime import parse_component_placement, resolve_placement
from rlinf_core.runtime.placement import infer_mode


def test_parse_forms():
    groups = parse_component_placement({"env,rollout": "all", "actor": "2-3", "reward": 1}, num_devices=4)
    assert groups["env"].devices == (0, 1, 2, 3) and groups["rollout"].ranks == ((0,), (1,), (2,), (3,))
    assert groups["actor"].devices == (2, 3) and groups["actor"].world_size == 2
    assert groups["reward"].devices == (1,)
    split = parse_component_placement({"rollout": "0-3:0-1", "actor": "4-5,7"}, num_devices=8)
    assert split["rollout"].ranks == ((0, 1), (2, 3))
    assert split["actor"].devices == (4, 5, 7)


@pytest.mark.parametrize("spec, message", [
    ({"actor": "0-8"}, r"cluster.component_placement\['actor'\]: device 8 is out of range: there are 8 \(0-7\)"),
    ({"actr": "all"}, r"unknown worker group 'actr'. Did you mean 'actor'\? Valid: actor, critic"),
    ({"actor": "0-x"}, r"cannot parse device '0-x'; use 'all', '3', '0-3' or '0-1,4-5'"),
    ({"actor": "3-1"}, "runs backwards"),
    ({"actor": "0-2:0-1"}, "3 devices cannot be split evenly among 2 processes"),
    ({"actor": "all", "actor,env": "0"}, "worker group 'actor' is placed twice"),
    ({"node_group": "a", "placement": "0-7"}, "node-group form"),
])
def test_parse_errors_name_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_component_placement(spec, num_devices=8)


def _cluster(spec, placement=None):
    return SimpleNamespace(component_placement=spec, placement=placement)


def test_strategies_and_inference():
    plugins = get_plugins()
    needed = ["env", "rollout", "actor"]
    assert resolve_placement(_cluster({}), plugins, needed, 2).mode == "collocated"
    assert resolve_placement(_cluster({"env": 0, "rollout": 1, "actor": 2}), plugins, needed, 3).mode == "disaggregated"
    hyb = resolve_placement(_cluster({"env": 0, "rollout,actor": 1}), plugins, needed, 2)
    assert hyb.mode == "hybrid" and hyb.groups_on(1) == ["rollout", "actor"]
    assert "hybrid placement on 2 device(s): env: devices 0 x 1 rank(s)" in hyb.describe()
    assert infer_mode(parse_component_placement({"env,rollout": "all"}, 2)) == "collocated"


def test_strategy_constraints_are_enforced():
    plugins = get_plugins()
    with pytest.raises(ConfigError, match=r"disaggregated needs separate devices, but 'env' and 'rollout' both use device\(s\) 1"):
        resolve_placement(_cluster({"env": "0-1", "rollout": "1-2", "actor": 3}, "disaggregated"), plugins,
                          ["env", "rollout", "actor"], 4)
    with pytest.raises(ConfigError, match="collocated puts every group on the same devices"):
        resolve_placement(_cluster({"env": 0, "rollout,actor": 1}, "collocated"), plugins, ["env", "rollout", "actor"], 2)
    with pytest.raises(ConfigError, match=r"cluster.placement: unknown placement 'colocated'. Did you mean 'collocated'"):
        resolve_placement(_cluster({}, "colocated"), plugins, ["env"], 2)


def test_missing_and_extra_groups():
    plugins = get_plugins()
    with pytest.raises(ConfigError, match="worker group\\(s\\) actor have no devices; add e.g. 'actor: all'"):
        resolve_placement(_cluster({"env,rollout": "all"}), plugins, ["env", "rollout", "actor"], 2)
    with pytest.raises(ConfigError, match="this flow has no worker group\\(s\\) critic"):
        resolve_placement(_cluster({"env,rollout,critic": "all"}), plugins, ["env", "rollout"], 2)
