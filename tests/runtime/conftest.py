"""A Ray instance shared by the runtime tests (ray.init(num_cpus=4): CPU slots are logical)."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="session")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def by_value(ray_session):
    """Register a test module for pickling by value (test modules are not importable in Ray workers)."""

    def register(module_name: str) -> None:
        ray_session.cloudpickle.register_pickle_by_value(sys.modules[module_name])

    return register
