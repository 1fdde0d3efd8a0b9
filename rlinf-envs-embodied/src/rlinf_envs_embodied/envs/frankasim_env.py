"""The ``frankasim`` env (extra ``[frankasim]``): a Franka Panda picks up a cube, on MuJoCo.

The counterpart of RLinf's ``frankasim`` (SERL's franka_sim), built here from the Franka Emika Panda that
ships inside the ``gymnasium-robotics`` wheel (its Franka Kitchen robot: ``chain.xml``, ``assets.xml``,
``actuator.xml`` and meshes under ``envs/assets/kitchen_franka/franka_assets``; nothing is downloaded at run
time). The scene is assembled with ``mujoco.MjSpec``: a floor that serves as the table, the Panda
(gravity-compensated; its joint position actuators, damped in the actuators rather than the joints, see
:data:`ARM_KV`), a free cube and two cameras (``front``, ``wrist``).

Config (the ``env.train`` / ``env.eval`` section): ``env_id`` ``PandaPickCube-v0`` (state) or
``PandaPickCubeVision-v0`` (state + camera images), ``max_episode_steps`` (default 100),
``ignore_terminations``, ``auto_reset``, ``use_rel_reward`` and ``init_params``
(:class:`~rlinf_envs_embodied.options.FrankaSimOptions`).

Actions: 4 floats in [-1, 1]: the TCP's xyz displacement (times ``action_scale`` metres, the target
clipped to a workspace box) and the gripper (-1 open .. +1 closed). Each action is held for
``control_dt`` seconds; a damped least-squares IK turns the TCP target (gripper pointing down) into
joint position targets.
Observations: ``state`` (10 floats: TCP position 3, TCP velocity 3, gripper closure 0..1, cube position 3),
``instruction``, and for the vision task ``images["front"]`` / ``images["wrist"]`` (uint8 HWC).
Reward: ``0.3 * exp(-10 * |tcp - cube|) + 0.7 * min(lift / lift_height, 1)``, in [0, 1];
``info["success"]`` when the cube is ``lift_height`` above its resting height (an episode then
terminates, unless ``terminate_on_success`` is off or ``ignore_terminations`` is set).
Each reset puts the arm at its start pose and the cube at a random spot drawn from the sub-env's seed.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache, partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from rlinf_core.errors import ConfigError, suggestion_text

from rlinf_envs_embodied.envs.gym_vector import RENDER_CONTEXT, GymVectorEnv
from rlinf_envs_embodied.envs.rendering import close_offscreen_viewer, select_mujoco_gl
from rlinf_envs_embodied.options import FrankaSimOptions, cfg_get, section_of

#: Task id -> whether it observes camera images.
TASKS = {"PandaPickCube-v0": False, "PandaPickCubeVision-v0": True}
PIP_HINT = "pip install 'rlinf-envs-embodied[frankasim]'"
INSTRUCTION = "pick up the cube"
DEFAULT_MAX_EPISODE_STEPS = 100

PHYSICS_DT = 0.002
CUBE_HALF = 0.015  # a 3 cm cube
CUBE_MASS = 0.05
#: Where the TCP may go (metres, robot base at the origin, floor at z = 0).
WORKSPACE_LOW = np.array([0.25, -0.3, 0.01])
WORKSPACE_HIGH = np.array([0.75, 0.3, 0.45])
#: Where the cube may start (x, y).
CUBE_LOW = np.array([0.4, -0.15])
CUBE_HIGH = np.array([0.6, 0.15])
TCP_START = np.array([0.5, 0.0, 0.25])
#: The TCP frame's orientation, gripper pointing down, fingers closing along world x.
TCP_ROTATION = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
#: The TCP site, on the flange (``panda0_link7``) along its z axis: between the finger pads, 1 cm above the fingertips.
TCP_OFFSET = 0.25
#: The hand's orientation on the flange (as in ``chain.xml``): the fingers slide along its y axis.
HAND_QUAT = np.array([0.92388, 0.0, 0.0, -0.382683])
FINGER_RANGE = 0.04
#: The arm's damping (N m s / rad), moved from the joints into the position actuators (their kv; kp stays the
#: model's 870 / 120): ``chain.xml`` damps the joints passively (100 on joints 1-4, 10 on 5-7), which at the
#: speed of an action of 1 takes more than the actuators' 87 / 12 N m; an actuator's kv is offset by the lead
#: of its target (see ``PandaPickCubeEnv.step``), so moving steadily costs no torque.
ARM_KV = np.array([150.0] * 4 + [15.0] * 3)
ARM_JOINT_DAMPING = 1.0  # what is left on the joints themselves
#: The model's assets inside the gymnasium-robotics package.
ASSETS_SUBDIR = ("envs", "assets", "kitchen_franka", "franka_assets")
IK_EVERY = 5  # physics steps per IK update
IK_DAMPING = 1e-2
IK_MAX_STEP = 0.05  # metres of TCP error corrected per IK update
REACH_SCALE = 10.0
REACH_WEIGHT, LIFT_WEIGHT = 0.3, 0.7


def check_task(env_id: Any, key: str) -> str:
    """The task id of ``<key>`` (``env.train.env_id``), or a one-line ConfigError with the valid ids."""
    if not env_id:
        raise ConfigError(f"{key}: the frankasim env needs a task: {', '.join(TASKS)}")
    if str(env_id) not in TASKS:
        raise ConfigError(f"{key}: {env_id!r} is not a frankasim task.{suggestion_text(str(env_id), list(TASKS))} "
                          f"Valid: {', '.join(TASKS)}")
    return str(env_id)


def panda_assets() -> str:
    """The directory of the Franka Panda model (``chain.xml``, ``assets.xml``, ``actuator.xml``, ``meshes/``)
    inside the installed gymnasium-robotics package (found without importing it)."""
    try:
        import mujoco  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"env 'frankasim' needs mujoco ({exc.name} is missing). Fix: {PIP_HINT}") from exc
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"env 'frankasim' needs gymnasium-robotics (it ships the Franka Panda model). Fix: {PIP_HINT}",
                          name="gymnasium_robotics")
    root = os.path.join(next(iter(spec.submodule_search_locations)), *ASSETS_SUBDIR)
    missing = [f for f in ("chain.xml", "assets.xml", "actuator.xml", "meshes") if not os.path.exists(os.path.join(root, f))]
    if missing:
        raise RuntimeError(f"env 'frankasim': the installed gymnasium-robotics has no Franka Panda model at {root} "
                           f"(missing: {', '.join(missing)}). Fix: pip install 'gymnasium-robotics>=1.4'")
    return root


def panda_spec(assets: str) -> Any:
    """The Panda of :func:`panda_assets` as a ``mujoco.MjSpec`` (bodies ``panda0_link0..7``, joints
    ``robot:panda0_joint1..7`` and ``robot:panda0_finger_joint1/2``, position actuators ``panda0_joint1..7``,
    ``r_gripper_finger_joint``, ``l_gripper_finger_joint``)."""
    import mujoco

    # the files are <mujocoinclude> fragments of the Kitchen scene: wrap them in a model of our own
    panda = mujoco.MjSpec.from_string(
        f'<mujoco model="panda"><include file="{os.path.join(assets, "assets.xml")}"/>'
        f'<worldbody><include file="{os.path.join(assets, "chain.xml")}"/></worldbody>'
        f'<include file="{os.path.join(assets, "actuator.xml")}"/></mujoco>')
    # the mesh paths are relative to a meshdir meant for the Kitchen scene's own directory: make them absolute
    panda.meshdir = ""
    for mesh in panda.meshes:
        kind, name = mesh.file.replace(os.sep, "/").split("/")[-2:]
        mesh.file = os.path.join(assets, "meshes", kind, name)
    return panda


def _look_at(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The quaternion of a camera at ``pos`` looking at ``target`` (image up toward +z of the parent frame)."""
    import mujoco

    forward = (target - pos) / np.linalg.norm(target - pos)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, up, -forward]).ravel())
    return quat


def build_spec(assets: str, image_size: tuple[int, int] = (128, 128)) -> Any:
    """The pick-cube scene as a ``mujoco.MjSpec``: floor, Panda (prefix ``panda/``), cube, cameras."""
    import mujoco

    spec = mujoco.MjSpec()
    spec.modelname = "rlinf_panda_pick_cube"
    spec.compiler.degree = False  # the Panda's angles are in radians (attach keeps the parent's unit)
    spec.option.timestep = PHYSICS_DT
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.global_.offheight = max(480, image_size[0])
    spec.visual.global_.offwidth = max(640, image_size[1])
    world = spec.worldbody
    light = world.add_light(pos=[0.5, 0.0, 1.5], dir=[0.0, 0.0, -1.0], diffuse=[0.7, 0.7, 0.7])
    if hasattr(mujoco, "mjtLightType"):  # MuJoCo >= 3.3.1 (4.x); older versions have a ``directional`` flag
        light.type = mujoco.mjtLightType.mjLIGHT_DIRECTIONAL
    else:
        light.directional = True
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[1.5, 1.5, 0.05], rgba=[0.55, 0.5, 0.45, 1])
    world.add_geom(name="workspace", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0.5, 0.0, 0.0005], size=[0.15, 0.2, 0.0005],
                   rgba=[0.35, 0.45, 0.6, 1], contype=0, conaffinity=0)

    panda = panda_spec(assets)
    for body in panda.bodies:
        body.gravcomp = 1.0  # the real arm compensates gravity; the position actuators then track closely
    panda.site("end_effector").rgba = [0.0, 0.0, 0.0, 0.0]  # the Kitchen's marker sphere, in the wrist camera's view
    flange = panda.body("panda0_link7")
    flange.add_site(name="tcp", pos=[0.0, 0.0, TCP_OFFSET], quat=HAND_QUAT, size=[0.005, 0.005, 0.005], rgba=[0, 1, 0, 0])
    # beside the hand (off its finger plane), looking at the point just beyond the fingertips
    wrist = np.zeros(3)
    mujoco.mju_rotVecQuat(wrist, np.array([0.08, 0.0, 0.0]), HAND_QUAT)
    wrist[2] = 0.15
    flange.add_camera(name="wrist", pos=wrist, quat=_look_at(wrist, np.array([0.0, 0.0, TCP_OFFSET + 0.02])), fovy=70.0)
    spec.nuser_actuator = panda.nuser_actuator  # its actuators carry user data (MuJoCo 4 warns on a mismatch)
    spec.attach(panda, prefix="panda/", frame=world.add_frame())

    cube = world.add_body(name="cube", pos=[0.5, 0.0, CUBE_HALF])
    cube.add_freejoint(name="cube")
    cube.add_geom(name="cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, mass=CUBE_MASS,
                  rgba=[0.85, 0.15, 0.15, 1], friction=[1.0, 0.01, 0.001], condim=4)
    front = np.array([1.0, 0.0, 0.4])
    world.add_camera(name="front", pos=front, quat=_look_at(front, np.array([0.5, 0.0, 0.06])), fovy=45.0)
    return spec


class _Scene:
    """The compiled model with the ids, limits and start pose the task needs (shared by sub-envs)."""

    def __init__(self, assets: str, image_size: tuple[int, int]):
        import mujoco

        self.model = model = build_spec(assets, image_size).compile()
        self.arm_joints = [model.joint(f"panda/robot:panda0_joint{i}").id for i in range(1, 8)]
        self.arm_qpos = np.array([model.jnt_qposadr[j] for j in self.arm_joints])
        self.arm_dofs = np.array([model.jnt_dofadr[j] for j in self.arm_joints])
        self.fingers = np.array([model.jnt_qposadr[model.joint(f"panda/robot:panda0_finger_joint{i}").id] for i in (1, 2)])
        self.arm_actuators = np.array([model.actuator(f"panda/panda0_joint{i}").id for i in range(1, 8)])
        # the damping moves into the actuators (set on the compiled model: the spec's fields differ across MuJoCo versions)
        model.dof_damping[self.arm_dofs] = ARM_JOINT_DAMPING
        model.actuator_biasprm[self.arm_actuators, 2] = -ARM_KV  # force = kp * (ctrl - q) - kv * qdot
        #: one position actuator per finger, both driven by the action's 4th entry
        self.gripper_actuators = np.array([model.actuator(f"panda/{side}_gripper_finger_joint").id for side in "rl"])
        self.gripper_open = float(model.actuator_ctrlrange[self.gripper_actuators[0], 1])
        # joint targets stay inside both the joint limits and the actuators' control ranges
        self.ctrl_low = np.maximum(model.jnt_range[self.arm_joints, 0], model.actuator_ctrlrange[self.arm_actuators, 0])
        self.ctrl_high = np.minimum(model.jnt_range[self.arm_joints, 1], model.actuator_ctrlrange[self.arm_actuators, 1])
        #: (joint damping + kv) / kp of each arm joint: force = kp * (ctrl - q) - (damping + kv) * qdot
        kv = -model.actuator_biasprm[self.arm_actuators, 2]
        self.damping_ratio = (model.dof_damping[self.arm_dofs] + kv) / model.actuator_gainprm[self.arm_actuators, 0]
        self.tcp = model.site("panda/tcp").id
        cube_joint = model.joint("cube").id
        self.cube_qpos = int(model.jnt_qposadr[cube_joint])
        self.cube_dof = int(model.jnt_dofadr[cube_joint])
        self.cube_body = model.body("cube").id
        self.target_quat = np.zeros(4)
        mujoco.mju_mat2Quat(self.target_quat, TCP_ROTATION.ravel())
        # from an elbow-up guess: joints 1 and 3 stay near 0, far from every limit
        self.home = self._solve_start(np.array([0.0, -0.1, 0.0, -2.3, 0.0, 0.62, -1.57]))

    def _solve_start(self, q0: np.ndarray) -> np.ndarray:
        """Joint angles that put the TCP at :data:`TCP_START`, pointing down (kinematic IK from ``q0``)."""
        import mujoco

        data = mujoco.MjData(self.model)
        data.qpos[self.arm_qpos] = q0
        for _ in range(200):
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            dq = self.ik_step(data, TCP_START)[0]
            data.qpos[self.arm_qpos] = np.clip(data.qpos[self.arm_qpos] + dq, self.ctrl_low, self.ctrl_high)
            if np.linalg.norm(dq) < 1e-7:
                break
        return data.qpos[self.arm_qpos].copy()

    def ik_step(self, data: Any, target: np.ndarray, velocity: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Damped least-squares joint steps: toward the TCP ``target`` position and the downward orientation,
        and the joint velocity of a TCP ``velocity`` (zero when None)."""
        import mujoco

        model = self.model
        jacp, jacr = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        mujoco.mj_jacSite(model, data, jacp, jacr, self.tcp)
        jac = np.vstack([jacp[:, self.arm_dofs], jacr[:, self.arm_dofs]])
        pos_err = target - data.site_xpos[self.tcp]
        norm = np.linalg.norm(pos_err)
        if norm > IK_MAX_STEP:
            pos_err *= IK_MAX_STEP / norm
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[self.tcp])
        rot_err = np.zeros(3)
        mujoco.mju_subQuat(rot_err, self.target_quat, quat)  # in the TCP frame: rotate it into the world's
        err = np.concatenate([pos_err, data.site_xmat[self.tcp].reshape(3, 3) @ rot_err])
        pinv = jac.T @ np.linalg.inv(jac @ jac.T + IK_DAMPING**2 * np.eye(6))
        qd = pinv[:, :3] @ velocity if velocity is not None else np.zeros(len(self.arm_dofs))
        return pinv @ err, qd


@lru_cache(maxsize=8)
def scene(assets: str, image_size: tuple[int, int] = (128, 128)) -> _Scene:
    """The compiled scene, built once per process."""
    return _Scene(assets, image_size)


class PandaPickCubeEnv(gym.Env):
    """One pick-cube episode at a time (gymnasium API); see the module docstring for spaces and reward."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, assets: str, *, cameras: tuple[str, ...] = (), image_size: tuple[int, int] = (128, 128),
                 action_scale: float = 0.05, control_dt: float = 0.1, lift_height: float = 0.1,
                 terminate_on_success: bool = True, rel_reward: bool = False):
        import mujoco

        self._scene = scene(assets, tuple(image_size))
        self.model = self._scene.model
        self.data = mujoco.MjData(self.model)
        self.cameras = tuple(cameras)
        self.action_scale, self.lift_height = float(action_scale), float(lift_height)
        self.n_substeps = max(1, round(control_dt / PHYSICS_DT))
        self.terminate_on_success, self.rel_reward = bool(terminate_on_success), bool(rel_reward)
        self._prev_reward = 0.0
        self.image_size = tuple(image_size)
        self._viewer: Any = None  # gymnasium's offscreen viewer: it reads MUJOCO_GL when it is made
        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        obs: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (10,), np.float32)}
        if self.cameras:
            obs["images"] = spaces.Dict({c: spaces.Box(0, 255, (*image_size, 3), np.uint8) for c in self.cameras})
        self.observation_space = spaces.Dict(obs)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        import mujoco

        super().reset(seed=seed)
        sc, data = self._scene, self.data
        mujoco.mj_resetData(self.model, data)
        data.qpos[sc.arm_qpos] = sc.home
        data.qpos[sc.fingers] = FINGER_RANGE
        data.ctrl[sc.arm_actuators] = sc.home
        data.ctrl[sc.gripper_actuators] = sc.gripper_open
        xy = self.np_random.uniform(CUBE_LOW, CUBE_HIGH)
        data.qpos[sc.cube_qpos:sc.cube_qpos + 7] = [xy[0], xy[1], CUBE_HALF, 1.0, 0.0, 0.0, 0.0]
        mujoco.mj_forward(self.model, data)
        self._prev_reward = 0.0
        return self._obs(), {"success": False}

    def step(self, action: Any):
        import mujoco

        sc, data = self._scene, self.data
        action = np.clip(np.asarray(action, dtype=np.float64).reshape(4), -1.0, 1.0)
        start = data.site_xpos[sc.tcp].copy()
        target = np.clip(start + self.action_scale * action[:3], WORKSPACE_LOW, WORKSPACE_HIGH)
        data.ctrl[sc.gripper_actuators] = sc.gripper_open * (1.0 - action[3]) / 2.0
        # the TCP follows a straight line to the target over the first 70% of the step; the joint targets lead
        # by ((kv + joint damping) / kp) * joint velocity so that the damping does not lag them behind
        ramp = max(1, int(0.7 * self.n_substeps))
        velocity = (target - start) / (ramp * PHYSICS_DT)
        for k in range(self.n_substeps):
            if k % IK_EVERY == 0:
                ref = start + (target - start) * min(1.0, (k + IK_EVERY) / ramp)
                dq, qd = sc.ik_step(data, ref, velocity if k < ramp else None)
                ctrl = data.qpos[sc.arm_qpos] + dq + sc.damping_ratio * qd
                data.ctrl[sc.arm_actuators] = np.clip(ctrl, sc.ctrl_low, sc.ctrl_high)
            mujoco.mj_step(self.model, data)
        dense, success = self._reward()
        reward = dense - self._prev_reward if self.rel_reward else dense
        self._prev_reward = dense
        terminated = bool(success and self.terminate_on_success)
        return self._obs(), float(reward), terminated, False, {"success": success, "dense_reward": dense}

    def render(self) -> np.ndarray:
        return self.camera_image(self.cameras[0] if self.cameras else "front")

    def close(self) -> None:
        if self._viewer is not None:
            close_offscreen_viewer(self._viewer)
            self._viewer = None

    # ------------------------------------------------------------------ task

    @property
    def tcp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._scene.tcp].copy()

    @property
    def cube_pos(self) -> np.ndarray:
        return self.data.xpos[self._scene.cube_body].copy()

    def _reward(self) -> tuple[float, bool]:
        distance = float(np.linalg.norm(self.tcp_pos - self.cube_pos))
        lift = float(self.cube_pos[2] - CUBE_HALF)
        reward = REACH_WEIGHT * np.exp(-REACH_SCALE * distance) + LIFT_WEIGHT * min(max(lift / self.lift_height, 0.0), 1.0)
        return float(reward), lift >= self.lift_height

    def _obs(self) -> dict[str, Any]:
        import mujoco

        sc, data = self._scene, self.data
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(self.model, data, mujoco.mjtObj.mjOBJ_SITE, sc.tcp, vel, 0)
        closure = 1.0 - float(data.qpos[sc.fingers].sum()) / (2 * FINGER_RANGE)
        state = np.concatenate([self.tcp_pos, vel[3:], [closure], self.cube_pos]).astype(np.float32)
        obs: dict[str, Any] = {"state": state}
        if self.cameras:
            obs["images"] = {c: self.camera_image(c) for c in self.cameras}
        return obs

    def camera_image(self, camera: str) -> np.ndarray:
        """An RGB frame (uint8 HWC) of ``front`` or ``wrist`` (``panda/wrist``)."""
        import mujoco

        if self._viewer is None:
            # mujoco.Renderer would use the OpenGL backend fixed when mujoco was first imported
            from gymnasium.envs.mujoco.mujoco_rendering import OffScreenViewer

            height, width = self.image_size
            self._viewer = OffScreenViewer(self.model, self.data, width=width, height=height)
        self._viewer.make_context_current()
        camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "panda/wrist" if camera == "wrist" else camera)
        return np.ascontiguousarray(self._viewer.render("rgb_array", camera_id=camera_id))


def make_env(assets: str, *, max_episode_steps: int, **kwargs: Any) -> gym.Env:
    """One sub-env with its time limit (module-level so ``async`` workers can build it)."""
    return gym.wrappers.TimeLimit(PandaPickCubeEnv(assets, **kwargs), max_episode_steps)


class FrankaSimEnv(GymVectorEnv):
    """``num_envs`` pick-cube sub-envs, seeded ``seed + i``."""

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        key = section_of(config)
        opts = FrankaSimOptions.from_config(config, key)
        env_id = check_task(cfg_get(config, "env_id"), f"{key}.env_id")
        images = TASKS[env_id] if opts.images is None else bool(opts.images)
        cameras = tuple(opts.camera_names) if images else ()
        if cameras:
            select_mujoco_gl(f"{key}.init_params.images")
        assets = panda_assets()
        terminate = bool(opts.terminate_on_success) and not cfg_get(config, "ignore_terminations", False)
        fn = partial(make_env, assets, max_episode_steps=int(cfg_get(config, "max_episode_steps", DEFAULT_MAX_EPISODE_STEPS)),
                     cameras=cameras, image_size=(int(opts.camera_heights), int(opts.camera_widths)),
                     action_scale=float(opts.action_scale), control_dt=float(opts.control_dt),
                     lift_height=float(opts.lift_height), terminate_on_success=terminate,
                     rel_reward=bool(cfg_get(config, "use_rel_reward", False)))
        self.env_id = env_id
        self.device = device
        try:
            super().__init__([fn] * num_envs, seed=seed, vectorization=opts.vectorization, num_workers=opts.num_workers,
                             auto_reset=bool(cfg_get(config, "auto_reset", True)), clip_actions=bool(opts.clip_actions),
                             name=f"frankasim env {env_id!r} ({key})", instructions=[INSTRUCTION] * num_envs,
                             context=RENDER_CONTEXT if cameras else None)
        except Exception as exc:
            if cameras and "render" in f"{type(exc).__name__} {exc}".lower():
                raise ConfigError(f"{key}.init_params.images: rendering failed with "
                                  f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {exc}") from exc
            raise
