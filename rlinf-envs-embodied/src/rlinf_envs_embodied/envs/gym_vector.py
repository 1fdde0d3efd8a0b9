"""rlinf's :class:`~rlinf_core.interfaces.VectorEnv` over gymnasium's own vector envs.

:class:`GymVectorEnv` is the shared base of the ``gymnasium`` and ``metaworld`` envs: it builds a
``gymnasium.vector.SyncVectorEnv`` (or, ``async``, a
:class:`~rlinf_envs_embodied.envs.sliced_vector.SlicedAsyncVectorEnv`) from one factory per sub-env,
maps observations onto rlinf's dict and executes action chunks. It auto-resets ended sub-envs itself
(gymnasium's ``SAME_STEP`` semantics; gymnasium's vector env runs with auto-reset disabled), so that a
call can leave them for the caller's next ``reset`` (``step(..., reset_done=False)``).

What ``step`` returns, beyond the interface's shapes:

- a chunk ``(N, K, ...)`` is executed as ``K`` consecutive single steps; a sub-env whose episode
  ends at step ``k`` is reset at once and steps ``k+1 .. K-1`` of the chunk act on its new episode
  (so a chunk call equals ``K`` single-step calls);
- ``info["success"]`` ``(N,)``: the sub-env reported success at any step of the call (from the
  sub-env's own ``info["success"]``, including the step that ended an episode; False when the env
  has no such key); for a chunk, ``info["step_success"]`` ``(N, K)`` gives it per step;
- ``info["final_observation"]``: present when a sub-env's episode ended during the call; an obs dict
  of ``N`` rows where ended sub-envs hold their last observation before the reset and the others
  the current one, with ``info["_final_observation"]`` ``(N,)`` marking which rows ended (gymnasium's
  mask convention). If a sub-env ends twice in one chunk, the later episode's observation is kept;
- with ``reset_done=False`` the sub-envs whose episodes end at the call's last step are not reset: their
  rows of the observation are the last one (as in ``final_observation``). The flow passes it on a
  rollout's last step, after which it resets every sub-env from seeds of its own (a reset skipped: for
  Meta-World 8 ms a sub-env, a quarter of a 150-step rollout's simulation time). A sub-env left so and
  stepped again without a ``reset`` is reset first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space, iterate
from rlinf_core.errors import ConfigError
from rlinf_core.runtime.threads import usable_cpus

from rlinf_envs_embodied.envs.sliced_vector import SlicedAsyncVectorEnv

#: The start method of ``async`` worker processes for sub-envs that render: a process forked from one that
#: has a renderer (EGL, OSMesa, Vulkan) can hang creating its own, so they start fresh.
RENDER_CONTEXT = "spawn"


def _is_image(space: spaces.Space) -> bool:
    return (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3
            and space.shape[-1] == 3)


def _flat(space: spaces.Space, value: Any, n: int | None) -> np.ndarray:
    """A float32 vector per row (``n`` rows, or one unbatched row when ``n`` is None)."""
    if isinstance(space, spaces.Box):
        return np.asarray(value, dtype=np.float32).reshape((n, -1) if n is not None else (-1,))
    if n is not None:
        rows = iterate(batch_space(space, n), value)
        return np.stack([_flat(space, row, None) for row in rows])
    return np.asarray(spaces.flatten(space, value), dtype=np.float32)  # Discrete -> one-hot, etc.


class ObsMapper:
    """Maps one sub-env's gymnasium observation space onto rlinf's observation dict.

    Every leaf that is a uint8 ``(H, W, 3)`` box becomes ``images[name]`` (``name``: its dict key, the
    parent's key for a leaf named ``rgb``, ``"obs"`` for a bare image observation; ``renames`` maps
    keys to camera names); the first ``Text`` leaf becomes ``instruction`` (a list of ``N`` strings); every
    other leaf is flattened (boxes reshaped, discrete values one-hot) and concatenated, in the space's key
    order, into ``state`` float32 ``(N, S)``.
    """

    def __init__(self, space: spaces.Space, renames: Mapping[str, str] | None = None):
        renames = dict(renames or {})
        self._state: list[tuple[tuple[str, ...], spaces.Space]] = []
        self._images: list[tuple[tuple[str, ...], str]] = []
        self._text: tuple[str, ...] | None = None  # a Text leaf: the task instruction
        image_spaces: dict[str, spaces.Box] = {}
        text_space: spaces.Text | None = None

        def walk(sub: spaces.Space, path: tuple[str, ...]) -> None:
            if isinstance(sub, spaces.Dict):
                for key, child in sub.spaces.items():
                    walk(child, (*path, key))
            elif isinstance(sub, spaces.Text) and self._text is None:
                nonlocal text_space
                self._text, text_space = path, sub
            elif _is_image(sub):
                # ManiSkill's sensor_data/<camera>/rgb: a leaf named rgb is named after its camera
                name = path[-2] if len(path) >= 2 and path[-1] == "rgb" else (path[-1] if path else "obs")
                name = renames.get(name, name)
                self._images.append((path, name))
                image_spaces[name] = sub
            else:
                self._state.append((path, sub))

        walk(space, ())
        self.state_dim = sum(spaces.flatdim(s) for _, s in self._state)
        #: The observation is one bare Box (CartPole's): ``state`` is it, reshaped, with nothing else to map.
        self._bare_box = (not self._images and self._text is None and len(self._state) == 1
                          and self._state[0][0] == () and isinstance(self._state[0][1], spaces.Box))
        entries: dict[str, spaces.Space] = {}
        if self._state:
            entries["state"] = spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32)
        if image_spaces:
            entries["images"] = spaces.Dict(image_spaces)
        if text_space is not None:
            entries["instruction"] = text_space
        #: The rlinf observation space of one sub-env.
        self.space = spaces.Dict(entries)

    @staticmethod
    def _at(obs: Any, path: tuple[str, ...]) -> Any:
        for key in path:
            obs = obs[key]
        return obs

    def __call__(self, obs: Any, n: int | None) -> dict[str, Any]:
        """The rlinf dict of a batched observation (``n`` rows) or of one sub-env's (``n=None``)."""
        if self._bare_box:
            return {"state": np.asarray(obs, dtype=np.float32).reshape((n, -1) if n is not None else (-1,))}
        out: dict[str, Any] = {}
        if self._state:
            parts = [_flat(s, self._at(obs, p), n) for p, s in self._state]
            out["state"] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        if self._images:
            out["images"] = {name: np.asarray(self._at(obs, p), dtype=np.uint8) for p, name in self._images}
        if self._text is not None:
            text = self._at(obs, self._text)
            out["instruction"] = str(text) if n is None else [str(t) for t in text]
        return out

    def map_tensors(self, obs: Any, n: int) -> dict[str, Any]:
        """The rlinf dict of a batched observation of torch tensors, kept on their device (box leaves only)."""
        import torch

        out: dict[str, Any] = {}
        if self._state:
            parts = [self._at(obs, p).reshape(n, -1).float() for p, _ in self._state]
            out["state"] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        if self._images:
            out["images"] = {name: self._at(obs, p).to(torch.uint8) for p, name in self._images}
        return out


def merge_rows(batch: dict[str, Any], rows: dict[str, Any], mask: Any) -> None:
    """``batch``'s rows where ``mask`` is set, taken from ``rows`` (a nested batch of the same keys), in place:
    numpy arrays with a numpy mask, torch tensors with a torch mask (on their device), lists (instructions)."""
    for key, value in rows.items():
        if isinstance(value, dict):
            merge_rows(batch[key], value, mask)
        elif isinstance(value, list):
            for i in np.flatnonzero(to_numpy(mask)):
                batch[key][i] = value[i]
        else:
            batch[key][mask] = value[mask]


def _copy(obs: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else (v.copy() if isinstance(v, np.ndarray) else list(v))
            for k, v in obs.items()}


def to_numpy(actions: Any) -> np.ndarray:
    """A numpy array from a numpy array, a list or a torch tensor (on any device)."""
    if hasattr(actions, "detach"):
        actions = actions.detach().cpu().numpy()
    return np.asarray(actions)


def is_chunk(got: tuple[int, ...], n: int, shape: tuple[int, ...], name: str) -> bool:
    """Whether actions of shape ``got`` are chunks ``(n, K, *shape)`` (else single steps ``(n, *shape)``).

    Raises:
        ConfigError: neither; one line naming ``actor.model.action_dim`` / ``actor.model.num_action_chunks``.
    """
    if got[:1] == (n,) and got[1:] == shape:
        return False
    if len(got) == 2 + len(shape) and got[0] == n and got[2:] == shape and got[1] > 0:
        return True
    single, chunk = str((n, *shape)), "(" + ", ".join(str(d) for d in (n, "K", *shape)) + ")"
    if len(got) == 2 + len(shape) and got[0] == n and got[2:] == shape:
        raise ConfigError(f"{name}: an action chunk of length 0 {got}: actor.model.num_action_chunks must be >= 1")
    dim_hint = f" (must be {shape[0]})" if len(shape) == 1 else ""
    if len(shape) == 1 and shape[0] > 1 and got[:1] == (n,) and len(got) in (2, 3) and got[-1] != shape[0]:
        raise ConfigError(f"{name}: actions of shape {got} have {got[-1]} dims per step, the env takes {shape[0]}: "
                          f"set actor.model.action_dim to {shape[0]}")
    raise ConfigError(
        f"{name}: actions of shape {got} do not fit {n} sub-envs with action shape {shape}: expected {single}, "
        f"or {chunk} for chunks of K = actor.model.num_action_chunks steps. Check actor.model.action_dim{dim_hint} "
        "and actor.model.num_action_chunks"
    )


class GymVectorEnv:
    """``N`` gymnasium sub-envs stepped together, seen through rlinf's VectorEnv interface.

    Args:
        env_fns: one factory per sub-env, returning a ``gymnasium.Env``.
        seed: sub-env ``i`` is seeded ``seed + i`` at the first :meth:`reset` (when it is given no seed).
        vectorization: ``sync`` or ``async`` (sub-envs stepped in worker processes).
        num_workers: ``async`` only: how many contiguous slices of the sub-envs step in parallel, one in
            this process and the others in worker processes
            (:class:`~rlinf_envs_embodied.envs.sliced_vector.SlicedAsyncVectorEnv`); default one per CPU
            core this process may use, at most one per sub-env.
        auto_reset: reset a sub-env in the step that ends its episode (gymnasium's ``SAME_STEP``
            mode); when false, call :meth:`reset` (optionally with ``options={"reset_mask": mask}``).
        clip_actions: clip continuous actions to the action space's bounds.
        name: what to call the env in messages, e.g. ``"gymnasium env 'CartPole-v1'"``.
        renames: observation keys -> camera names (see :class:`ObsMapper`).
        instructions: a task instruction per sub-env, returned as ``obs["instruction"]``.
        context: the multiprocessing start method of ``async`` workers (default: the platform's);
            ``spawn`` for simulators that cannot be forked once loaded (LIBERO's robosuite).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], *, seed: int, vectorization: str = "sync",
                 num_workers: int | None = None, auto_reset: bool = True, clip_actions: bool = True, name: str = "env",
                 renames: Mapping[str, str] | None = None, instructions: Sequence[str] | None = None,
                 context: str | None = None):
        mode = gym.vector.AutoresetMode.DISABLED  # auto_reset is done here (_step)
        if vectorization == "async":
            workers = min(len(env_fns), num_workers or usable_cpus())
            self._venv = SlicedAsyncVectorEnv(env_fns, workers, autoreset_mode=mode, context=context, in_process=True)
        else:
            self._venv = gym.vector.SyncVectorEnv(list(env_fns), autoreset_mode=mode)
        self.num_envs: int = self._venv.num_envs
        #: Processes of its own stepping sub-envs besides the caller's (the VectorEnv protocol's optional attribute).
        self.worker_processes: int = self._venv.worker_processes if isinstance(self._venv, SlicedAsyncVectorEnv) else 0
        self._name = name
        self._seed = int(seed)
        self._seeded = False
        self._mapper = ObsMapper(self._venv.single_observation_space, renames)
        self._instructions = list(instructions) if instructions is not None else None
        #: gymnasium spaces of one sub-env: the rlinf observation dict, and the env's own actions.
        self.observation_space: spaces.Dict = self._mapper.space
        self.action_space: spaces.Space = self._venv.single_action_space
        self._clip = clip_actions and isinstance(self.action_space, spaces.Box)
        #: The shape of single-step actions ``(N, *action_shape)``: the direct path of :meth:`step`.
        self._single_shape = (self.num_envs, *(self.action_space.shape or ()))
        self._no_success = np.zeros(self.num_envs, dtype=bool)
        #: step_async's pending step: ("stepping", reset_done) while the slices step, or ("done", step's result).
        self._pending: tuple[str, Any] | None = None
        self._auto_reset = bool(auto_reset)
        #: Sub-envs whose episode ended in a ``reset_done=False`` call and that no reset has restarted.
        self._unreset = np.zeros(self.num_envs, dtype=bool)

    # ------------------------------------------------------------------ interface

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every sub-env (seeded ``seed + i``; the constructor's seed on the first call)."""
        if seed is None and not self._seeded:
            seed = self._seed
        if seed is not None and not isinstance(seed, int):
            seed = [int(s) for s in seed]
        self._seeded = True
        options = dict(options) if options else None
        mask = None if options is None or options.get("reset_mask") is None else np.asarray(options["reset_mask"], bool)
        obs, info = self._venv.reset(seed=seed, options=options)
        self._unreset &= False if mask is None else ~mask
        return self._obs(obs), {"success": self._success(info)}

    def step(self, actions: Any, *, reset_done: bool = True) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """Execute single actions ``(N, ...)`` or chunks ``(N, K, ...)``; see the module docstring
        (``reset_done=False``: leave the sub-envs whose episodes end at the call's last step unreset)."""
        acts = to_numpy(actions)
        if acts.shape == self._single_shape:  # the direct single-step path: no chunk axis, no (N, K) arrays
            self._reset_left()
            return self._single_result(*self._venv.step(self._cast(acts)), reset_done=reset_done)
        acts, chunked = self._check_actions(acts)
        self._reset_left()
        if not chunked:
            return self._single_result(*self._venv.step(acts[:, 0]), reset_done=reset_done)
        n, k = self.num_envs, acts.shape[1]
        rewards = np.zeros((n, k), dtype=np.float32)
        terminated = np.zeros((n, k), dtype=bool)
        truncated = np.zeros((n, k), dtype=bool)
        success = np.zeros((n, k), dtype=bool)
        final: dict[str, Any] | None = None
        ended = np.zeros(n, dtype=bool)
        for j in range(k):
            obs, rew, term, trunc, info = self._venv.step(acts[:, j])
            rewards[:, j], terminated[:, j], truncated[:, j] = rew, term, trunc
            success[:, j] = self._success(info)
            done = terminated[:, j] | truncated[:, j]
            if self._auto_reset and done.any():
                last = self._mapper(obs, n)
                if final is None:
                    final = last
                else:  # a later episode's end overwrites an earlier one's
                    merge_rows(final, last, done)
                ended |= done
                obs = self._restart(obs, done, reset_done or j < k - 1)
        out_obs = self._obs(obs)
        out_info = {"success": success.any(axis=1), "step_success": success}
        self._final(out_obs, out_info, final, ended)
        return out_obs, rewards, terminated, truncated, out_info

    def step_async(self, actions: Any, *, reset_done: bool = True) -> None:
        """Start :meth:`step`; with ``async`` vectorization and single-step actions the sub-envs step in
        their processes until :meth:`step_wait` (chunks, and ``sync``, step here and now)."""
        if self._pending is not None:
            raise RuntimeError(f"{self._name}: step_async before the previous step's step_wait")
        acts = to_numpy(actions)
        if acts.shape == self._single_shape and hasattr(self._venv, "step_wait"):
            self._reset_left()
            self._venv.step_async(self._cast(acts))
            self._pending = ("stepping", reset_done)
        else:
            self._pending = ("done", self.step(acts, reset_done=reset_done))

    def step_wait(self) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """What :meth:`step` returns, for the actions given to :meth:`step_async`."""
        pending, self._pending = self._pending, None
        if pending is None:
            raise RuntimeError(f"{self._name}: step_wait without a step_async")
        kind, value = pending
        return self._single_result(*self._venv.step_wait(), reset_done=value) if kind == "stepping" else value

    def _single_result(self, obs: Any, rew: Any, term: Any, trunc: Any, info: Mapping[str, Any], *,
                       reset_done: bool) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """One step's results with actions ``(N, *action_shape)``: ended sub-envs reset (``auto_reset``)."""
        term, trunc = np.asarray(term, dtype=bool), np.asarray(trunc, dtype=bool)
        done = term | trunc
        final = None
        if self._auto_reset and done.any():
            final = self._mapper(obs, self.num_envs)
            obs = self._restart(obs, done, reset_done)
        out_obs = self._obs(obs)
        out_info: dict[str, Any] = {"success": self._success(info) if "success" in info else self._no_success.copy()}
        self._final(out_obs, out_info, final, done)
        return out_obs, np.asarray(rew, dtype=np.float32), term, trunc, out_info

    def _restart(self, obs: Any, done: np.ndarray, reset: bool) -> Any:
        """The observation after auto-resetting the ``done`` sub-envs, or, without ``reset``, ``obs`` (they wait)."""
        if not reset:
            self._unreset |= done
            return obs
        obs, _ = self._venv.reset(options={"reset_mask": done.copy()})
        return obs

    def _reset_left(self) -> None:
        """Reset the sub-envs a ``reset_done=False`` call left ended, before they step again."""
        if self._unreset.any():
            self._venv.reset(options={"reset_mask": self._unreset.copy()})
            self._unreset[:] = False

    def _final(self, out_obs: dict[str, Any], out_info: dict[str, Any], final: dict[str, Any] | None,
               ended: np.ndarray) -> None:
        """``info["final_observation"]`` (and its mask ``ended``): ``final``'s rows where a sub-env ended."""
        if final is None:
            return
        merged = _copy(out_obs)
        merge_rows(merged, final, ended)
        out_info["final_observation"], out_info["_final_observation"] = merged, ended.copy()

    def close(self) -> None:
        """Close every sub-env (and the worker processes of ``async`` vectorization)."""
        self._venv.close()

    # ------------------------------------------------------------------ helpers

    def _obs(self, obs: Any) -> dict[str, Any]:
        out = self._mapper(obs, self.num_envs)
        if self._instructions is not None:
            out["instruction"] = list(self._instructions)
        return out

    def _success(self, info: Mapping[str, Any]) -> np.ndarray:
        """Success flags of one step from the sub-envs' own ``info["success"]`` (False where absent)."""
        if "success" not in info:
            return np.zeros(self.num_envs, dtype=bool)
        return np.asarray(info["success"]).astype(bool) & np.asarray(info.get("_success", True), dtype=bool)

    def _check_actions(self, acts: np.ndarray) -> tuple[np.ndarray, bool]:
        """``(N, K, *action_shape)`` actions (and whether a chunk was given); a one-line error otherwise."""
        chunked = is_chunk(tuple(acts.shape), self.num_envs, tuple(self.action_space.shape or ()), self._name)
        if not chunked:
            acts = acts[:, None]
        return self._cast(acts), chunked

    def _cast(self, acts: np.ndarray) -> np.ndarray:
        """Actions clipped to the bounds (``clip_actions``, boxes) and cast to the action space's dtype."""
        if self._clip:
            acts = np.clip(acts, self.action_space.low, self.action_space.high)
        return acts.astype(self.action_space.dtype, copy=False)
