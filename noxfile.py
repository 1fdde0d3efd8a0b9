"""Test sessions. `nox` runs the default ones (what CI runs; see README); `nox -l` lists them.

Every install goes through constraints.txt, which pins the CPU build of torch.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "minimal", "discovery", "tests"]

CONSTRAINTS = ("-c", "constraints.txt")
FIRST_PARTY = (
    "./rlinf-core[ray]",
    "./rlinf-algos",
    "./rlinf-backends-fsdp",
    "./rlinf-backends-megatron",
    "./rlinf-envs-embodied",
    "./rlinf-cli",
)
DEMO_FIXTURE = "./tests/fixtures/rlinf-demo-plugin"
TEST_DEPS = ("pytest>=8", "hypothesis>=6")
STRICT = {"RLINF_STRICT_PLUGINS": "1"}


@nox.session
def tests(session: nox.Session) -> None:
    """All packages and the demo third-party plugin installed; the whole suite (no GPU tests)."""
    session.install(*CONSTRAINTS, *FIRST_PARTY, DEMO_FIXTURE, *TEST_DEPS)
    session.run("rlinf", "plugins", "list", env=STRICT)
    session.run(
        "pytest", "tests", "--ignore=tests/minimal", "--ignore=tests/discovery", "-m", "not gpu",
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
    """The third-party, broken and duplicate fixture packages installed beside rlinf-core."""
    session.install(
        *CONSTRAINTS, "./rlinf-core", "./rlinf-cli", DEMO_FIXTURE,
        "./tests/fixtures/rlinf-broken-plugin", "./tests/fixtures/rlinf-duplicate-plugin", "pytest>=8",
    )
    session.run("rlinf", "plugins", "list")
    session.run("pytest", "tests/discovery", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package, the tests, examples and benchmarks."""
    session.install(*CONSTRAINTS, "ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session
def bench_algos(session: nox.Session) -> None:
    """benchmarks/algos.py with veRL's core_algos (verl without its GPU dependencies) beside ours."""
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", "numpy", "omegaconf", "tensordict", "packaging",
                    "ray", "transformers", "codetiming", "orjson")
    session.install(*CONSTRAINTS, "--no-deps", "verl==0.9.1")
    session.run("python", "benchmarks/algos.py", *session.posargs)
