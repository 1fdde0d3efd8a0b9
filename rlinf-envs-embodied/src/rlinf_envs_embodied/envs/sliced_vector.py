"""A gymnasium vector env whose sub-envs are stepped in a few worker processes, a slice each.

gymnasium's ``AsyncVectorEnv`` runs one process per sub-env: with 16 Meta-World sub-envs on two cores
it is no faster than stepping them in one process (the processes take turns and every step is 16
round trips). :class:`SlicedAsyncVectorEnv` splits the sub-envs into ``num_workers`` contiguous slices
instead, each stepped in a ``gymnasium.vector.SyncVectorEnv`` of its own in a worker process, or, with
``in_process``, the last one in the calling process (which would otherwise sit waiting): one round trip
per worker and step, and the slices step in parallel. Measured (16 ``reach-v3`` sub-envs, random
actions, 2 cores): 5.2 ms a step in one process, ``AsyncVectorEnv`` 5.2-5.4 ms, two slices in two
worker processes 3.3-3.5 ms, two slices with one in process 3.0-3.2 ms.
EnvPool and PufferLib vectorize this way but need their own env APIs; this keeps any gymnasium env.

It is a ``gymnasium.vector.VectorEnv`` with the sync env's semantics (auto-reset modes, ``reset``'s
``seed`` and ``options["reset_mask"]``, infos with ``_key`` masks and ``final_obs`` / ``final_info``),
so that it stands in for ``SyncVectorEnv`` / ``AsyncVectorEnv`` wherever they are used.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import CloudpickleWrapper, batch_space


def _serve(venv: gym.vector.SyncVectorEnv, command: str, arg: Any) -> tuple[str, Any]:
    """One command on a slice's sub-envs: ``("ok", result)`` or ``("error", traceback)``."""
    try:
        if command == "step":
            return "ok", venv.step(arg)
        if command == "reset":
            return "ok", venv.reset(**arg)
        if command == "get_attr":
            return "ok", venv.get_attr(arg)
        if command == "call":
            name, args, kwargs = arg
            return "ok", venv.call(name, *args, **kwargs)
        raise ValueError(f"unknown command {command!r}")
    except Exception:
        return "error", traceback.format_exc()


class _LocalSlice:
    """The slice stepped in this process, behind a pipe's ``send`` / ``recv``: a command runs at ``send``
    (after the worker processes have been sent theirs, so that it runs while they do)."""

    def __init__(self, fns: Sequence[Callable[[], gym.Env]], mode: gym.vector.AutoresetMode):
        self.venv = gym.vector.SyncVectorEnv(list(fns), autoreset_mode=mode)
        self._answer: tuple[str, Any] | None = ("ok", (self.venv.single_observation_space, self.venv.single_action_space,
                                                       self.venv.metadata))

    def send(self, message: tuple[str, Any]) -> None:
        command, arg = message
        if command == "close":
            self.venv.close()
            self._answer = ("ok", None)
        else:
            self._answer = _serve(self.venv, command, arg)

    def recv(self) -> tuple[str, Any]:
        answer, self._answer = self._answer, None
        if answer is None:
            raise EOFError("no command was sent to the in-process slice")
        return answer

    def poll(self, timeout: float = 0.0) -> bool:
        return self._answer is not None

    def close(self) -> None:
        if not self.venv.closed:
            self.venv.close()


def _worker(pipe: Any, parent: Any, fns: CloudpickleWrapper, mode: gym.vector.AutoresetMode) -> None:
    """Serve one slice: build its sub-envs, then answer ``(command, argument)`` until ``close``."""
    parent.close()
    venv = None
    try:
        venv = gym.vector.SyncVectorEnv(fns.fn, autoreset_mode=mode)
        pipe.send(("ok", (venv.single_observation_space, venv.single_action_space, venv.metadata)))
        while True:
            command, arg = pipe.recv()
            if command == "close":
                pipe.send(("ok", None))
                break
            pipe.send(_serve(venv, command, arg))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        pass
    except Exception:
        try:
            pipe.send(("error", traceback.format_exc()))
        except (BrokenPipeError, OSError):
            pass
    finally:
        if venv is not None:
            venv.close()


#: Seconds a worker process may take to build its sub-envs before the env gives up on it.
STARTUP_TIMEOUT_S = 600.0


def merge_infos(parts: Sequence[dict[str, Any]], sizes: Sequence[int]) -> dict[str, Any]:
    """One vector info dict from the info dicts of consecutive slices of ``sizes`` sub-envs each.

    A key a slice lacks is filled with zeros (``None`` in object arrays, ``False`` in ``_key``
    masks), as gymnasium fills the rows of sub-envs that did not report it.
    """
    out: dict[str, Any] = {}
    keys = dict.fromkeys(k for part in parts for k in part)
    for key in keys:
        values = [part.get(key) for part in parts]
        sample = next(v for v in values if v is not None)
        if isinstance(sample, dict):
            out[key] = merge_infos([v if v is not None else {} for v in values], sizes)
            continue
        sample = np.asarray(sample)
        arrays = []
        for value, size in zip(values, sizes, strict=True):
            if value is not None:
                arrays.append(np.asarray(value))
            elif sample.dtype == object:
                arrays.append(np.full(size, None, dtype=object))
            else:
                arrays.append(np.zeros((size, *sample.shape[1:]), dtype=sample.dtype))
        out[key] = np.concatenate(arrays)
    return out


class SlicedAsyncVectorEnv(gym.vector.VectorEnv):
    """``len(env_fns)`` sub-envs in ``num_workers`` contiguous slices (sizes differing by at most 1) that step
    in parallel: each in a worker process, or, with ``in_process``, the last one in this process.

    Args:
        env_fns: one factory per sub-env (pickled to the workers with cloudpickle).
        num_workers: slices; at most ``len(env_fns)``.
        autoreset_mode: as ``SyncVectorEnv``'s.
        context: the multiprocessing start method (default: the platform's).
        in_process: step the last slice in this process (it would otherwise wait for the others): one
            process fewer than slices, so that ``num_workers`` = CPU cores does not oversubscribe them.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], num_workers: int, *,
                 autoreset_mode: gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP,
                 context: str | None = None, in_process: bool = False):
        fns = list(env_fns)
        if not 1 <= num_workers <= len(fns):
            raise ValueError(f"num_workers must be between 1 and the number of sub-envs ({len(fns)}), got {num_workers}")
        self.num_envs = len(fns)
        self.autoreset_mode = autoreset_mode
        slices = np.array_split(np.arange(self.num_envs), num_workers)
        self._bounds = [(int(s[0]), int(s[-1]) + 1) for s in slices]
        self._sizes = [hi - lo for lo, hi in self._bounds]
        ctx = mp.get_context(context)
        self._pipes: list[Any] = []
        self._procs: list[Any] = []
        self.closed = False
        try:
            for w, (lo, hi) in enumerate(self._bounds):
                if in_process and w == num_workers - 1:
                    self._pipes.append(_LocalSlice(fns[lo:hi], autoreset_mode))
                    continue
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(child, parent, CloudpickleWrapper(fns[lo:hi]), autoreset_mode),
                                   name=f"rlinf-env-slice-{lo}-{hi - 1}", daemon=True)
                proc.start()
                child.close()
                self._pipes.append(parent)
                self._procs.append(proc)
            first, *_ = self._receive(timeout=STARTUP_TIMEOUT_S)
        except BaseException:
            self._terminate()
            raise
        self.single_observation_space, self.single_action_space, self.metadata = first
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._last_obs: list[Any] = [None] * num_workers
        self._stepping = False

    @property
    def worker_processes(self) -> int:
        """The worker processes stepping slices (``num_workers``, less the in-process slice)."""
        return len(self._procs)

    # ------------------------------------------------------------------ plumbing

    def _receive(self, workers: Sequence[int] | None = None, timeout: float | None = None) -> list[Any]:
        """Each worker's answer (in order); the first failure raises, naming its sub-envs."""
        workers = range(len(self._pipes)) if workers is None else workers
        results, error = [], None
        for w in workers:
            lo, hi = self._bounds[w]
            try:
                if timeout is not None and not self._pipes[w].poll(timeout):
                    raise TimeoutError(f"the worker process of sub-envs {lo}..{hi - 1} did not build them within {timeout:.0f} s "
                                       "(a simulator that hangs in a forked process: give the env context='spawn')")
                status, value = self._pipes[w].recv()
            except (EOFError, ConnectionResetError) as exc:
                status, value = "error", f"the worker process of sub-envs {lo}..{hi - 1} died ({type(exc).__name__})"
            if status != "ok" and error is None:
                where = "in this process" if isinstance(self._pipes[w], _LocalSlice) else f"worker process {w}"
                error = f"sub-envs {lo}..{hi - 1} ({where}) failed:\n{value}"
            results.append(value)
        if error is not None:
            raise RuntimeError(error)
        return results

    # ------------------------------------------------------------------ VectorEnv

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if isinstance(seed, int):
            seed = [seed + i for i in range(self.num_envs)]
        if seed is not None and len(seed) != self.num_envs:
            raise ValueError(f"reset: {len(seed)} seeds for {self.num_envs} sub-envs")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
        sent = []
        for w, (lo, hi) in enumerate(self._bounds):
            opts = dict(options)
            if mask is not None:
                if not mask[lo:hi].any():
                    continue
                opts["reset_mask"] = mask[lo:hi]
            self._pipes[w].send(("reset", {"seed": None if seed is None else list(seed[lo:hi]), "options": opts or None}))
            sent.append(w)
        answers = dict(zip(sent, self._receive(sent), strict=True))
        infos = []
        for w in range(len(self._pipes)):
            if w in answers:
                self._last_obs[w], info = answers[w]
            elif self._last_obs[w] is None:
                raise RuntimeError("reset: a reset_mask before the first full reset")
            else:
                info = {}
            infos.append(info)
        return self._obs(), merge_infos(infos, self._sizes)

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: Any) -> None:
        """Send each worker its slice of the actions and return at once (the slices step meanwhile)."""
        if self._stepping:
            raise RuntimeError("step_async: the previous step_async has not been collected with step_wait")
        for w, (lo, hi) in enumerate(self._bounds):
            self._pipes[w].send(("step", actions[lo:hi]))
        self._stepping = True

    def step_wait(self) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """The results of the step started by :meth:`step_async`, as :meth:`step` returns them."""
        if not self._stepping:
            raise RuntimeError("step_wait without a step_async")
        self._stepping = False
        results = self._receive()
        infos = []
        for w, (obs, _, _, _, info) in enumerate(results):
            self._last_obs[w] = obs
            infos.append(info)
        rewards = np.concatenate([r[1] for r in results])
        terminated = np.concatenate([r[2] for r in results])
        truncated = np.concatenate([r[3] for r in results])
        return self._obs(), rewards, terminated, truncated, merge_infos(infos, self._sizes)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        for pipe in self._pipes:
            pipe.send(("get_attr", name))
        return tuple(v for part in self._receive() for v in part)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        for pipe in self._pipes:
            pipe.send(("call", (name, args, kwargs)))
        return tuple(v for part in self._receive() for v in part)

    def close_extras(self, **kwargs: Any) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for pipe in self._pipes:
            try:
                if pipe.poll(5):
                    pipe.recv()
            except (EOFError, OSError):
                pass
        self._terminate()

    def _terminate(self) -> None:
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        for pipe in self._pipes:
            pipe.close()

    def _obs(self) -> Any:
        return concat_batches(self.single_observation_space, self._last_obs)


def concat_batches(space: gym.spaces.Space, parts: Sequence[Any]) -> Any:
    """One batch of ``space`` from consecutive batches of it (arrays joined, dicts and tuples per entry)."""
    if isinstance(space, gym.spaces.Dict):
        return {key: concat_batches(sub, [part[key] for part in parts]) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(concat_batches(sub, [part[i] for part in parts]) for i, sub in enumerate(space.spaces))
    if isinstance(space, (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        return np.concatenate(parts)
    return tuple(item for part in parts for item in part)  # Text and other spaces gymnasium batches as tuples
