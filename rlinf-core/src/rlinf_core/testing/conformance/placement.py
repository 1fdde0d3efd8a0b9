"""``PlacementPluginTests``: a ``placement`` strategy, ``strategy(groups, num_devices) -> Placement``.

``groups`` maps each worker group to its :class:`~rlinf_core.runtime.placement.GroupPlacement`
(parsed from ``cluster.component_placement``). Checks: every layout in ``accepted`` gives a
:class:`~rlinf_core.runtime.placement.Placement` that places every group (and only those) on
devices that exist, with ``num_devices`` kept and a mode name; the same input gives the same
output; every layout in ``rejected`` raises a one-line :class:`~rlinf_core.errors.ConfigError`
naming the ``cluster.*`` key. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pytest

from rlinf_core.testing.conformance.base import PluginTests, one_line

#: A layout: (``cluster.component_placement`` mapping, number of devices).
Layout = tuple[Mapping[str, str], int]


class PlacementPluginTests(PluginTests):
    """Subclass as ``class TestMyPlacement(PlacementPluginTests)``; set ``component``, ``accepted`` and ``rejected``.

    - ``accepted``: layouts the strategy must place (default: every group on all of 2 devices);
    - ``rejected``: layouts it must refuse with a ConfigError (default: none).
    """

    kind = "placement"
    accepted: ClassVar[Sequence[Layout]] = (({"actor,rollout,env": "all"}, 2),)
    rejected: ClassVar[Sequence[Layout]] = ()

    def place(self, spec: Mapping[str, str], num_devices: int) -> Any:
        from rlinf_core.runtime.placement import parse_component_placement

        groups = parse_component_placement(spec, num_devices)
        return groups, self.load_target()(groups, num_devices)

    def test_accepted_layouts_place_every_group(self) -> None:
        from rlinf_core.runtime.placement import Placement

        assert self.accepted, "set accepted to at least one layout the strategy places"
        for spec, n in self.accepted:
            groups, placement = self.place(spec, n)
            where = f"{self.component or 'placement'} on {dict(spec)} with {n} device(s)"
            assert isinstance(placement, Placement), f"{where}: must return rlinf_core.runtime.placement.Placement"
            assert isinstance(placement.mode, str) and placement.mode, f"{where}: Placement.mode must name the mode"
            assert placement.num_devices == n, f"{where}: num_devices {placement.num_devices} != {n}"
            assert set(placement.groups) == set(groups), (
                f"{where}: placed {sorted(placement.groups)}, must place exactly {sorted(groups)}")
            for name, g in placement.groups.items():
                assert g.world_size >= 1, f"{where}: group {name!r} has no rank"
                assert set(g.devices) <= set(range(n)), f"{where}: group {name!r} is on devices {g.devices} of {n}"
                assert {d for r in g.ranks for d in r} <= set(g.devices), f"{where}: {name!r} ranks use devices it lacks"
            assert placement.describe(), f"{where}: describe() is empty"

    def test_same_input_same_placement(self) -> None:
        for spec, n in self.accepted:
            assert self.place(spec, n)[1] == self.place(spec, n)[1], f"{dict(spec)} on {n}: two calls placed differently"

    def test_rejected_layouts_raise_one_line_config_errors(self) -> None:
        from rlinf_core.errors import ConfigError

        if not self.rejected:
            pytest.skip("no rejected layouts set: this strategy accepts every layout")
        for spec, n in self.rejected:
            with pytest.raises(ConfigError) as err:
                self.place(spec, n)
            assert "cluster." in one_line(err.value), f"the error for {dict(spec)} must name the cluster.* key"
