"""Choosing a MuJoCo OpenGL backend (``MUJOCO_GL``) for camera images, with a one-line error when none works.

MuJoCo fixes its backend when first imported, and a backend that is missing can crash or hang the
process that tries it, so each candidate is tried in a short subprocess that renders one frame.
The first that works is set in ``os.environ`` (inherited by ``async`` sub-env processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from rlinf_core.errors import ConfigError

#: Tried in this order when ``MUJOCO_GL`` is unset: EGL (GPU, or Mesa's software EGL), then OSMesa (CPU).
MUJOCO_GL_BACKENDS = ("egl", "osmesa")

_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string(
    "<mujoco><worldbody><light pos='0 0 2'/><geom type='sphere' size='.3' rgba='1 0 0 1'/></worldbody></mujoco>")
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
frame = r.render()
r.close()
assert frame.max() > 0, "rendered a blank frame"
print("RLINF_RENDER_OK")
"""

_chosen: str | None = None


def _probe(backend: str, timeout: float = 60.0) -> str | None:
    """``None`` when MuJoCo renders with ``MUJOCO_GL=backend``, else the reason (one line)."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"no frame within {timeout:.0f} s"
    if "RLINF_RENDER_OK" in proc.stdout:
        return None
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    return lines[-1][:200] if lines else f"exit status {proc.returncode}"


def select_mujoco_gl(key: str) -> str:
    """Set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) to a backend that renders, and return it.

    A ``MUJOCO_GL`` the user set is the only one tried. ``key`` is the config key that asked for
    images, named in the error.

    Raises:
        ConfigError: no backend rendered a frame; says which were tried, why, and what to install.
    """
    global _chosen
    requested = os.environ.get("MUJOCO_GL")
    if _chosen is not None and requested == _chosen:
        return _chosen
    candidates = (requested,) if requested else MUJOCO_GL_BACKENDS
    failures = []
    for backend in candidates:
        reason = _probe(backend)
        if reason is None:
            os.environ["MUJOCO_GL"] = backend
            if backend in ("egl", "osmesa"):
                os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            _chosen = backend
            return backend
        failures.append(f"MUJOCO_GL={backend}: {reason}")
    raise ConfigError(
        f"{key}: camera images need a MuJoCo renderer and none works here (tried {'; '.join(failures)}). "
        "Fix: apt-get install libosmesa6 (MUJOCO_GL=osmesa, CPU), or apt-get install libegl1 libegl-mesa0 "
        "libgl1-mesa-dri (MUJOCO_GL=egl: Mesa's software EGL, or a GPU's driver), "
        f"or set {key}: false"
    )


def close_offscreen_viewer(viewer: Any) -> None:
    """Close a gymnasium ``OffScreenViewer``, freeing MuJoCo's render context (framebuffers, textures) in the
    viewer's own OpenGL context first.

    gymnasium's ``close`` frees the OpenGL context but leaves the render context to the garbage collector,
    which frees it in whatever context is current then: another living renderer's, whose objects have the same
    ids, so that renderer's frames came back blank, without an error.
    """
    if getattr(viewer, "con", None) is not None:
        viewer.make_context_current()
        viewer.con.free()
    viewer.close()
