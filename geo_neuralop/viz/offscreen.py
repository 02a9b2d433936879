"""Off-screen rendering set-up and a safe probe of whether rendering works here.

With no display, VTK is pointed at its EGL render window (the vtk wheel's
headless path). A missing OpenGL library makes VTK crash the process rather
than raise, so :func:`rendering_available` tries a tiny render in a subprocess.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

_PROBE = """
import os
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
import pyvista as pv
plotter = pv.Plotter(off_screen=True, window_size=(64, 48))
plotter.add_mesh(pv.Sphere(), color="red")
image = plotter.screenshot(return_img=True)
plotter.close()
assert image.shape == (48, 64, 3) and image.std() > 0, "blank image"
print("ok")
"""


def has_display() -> bool:
    """Whether an X11 or Wayland display is available for interactive windows."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def configure_offscreen() -> bool:
    """Select VTK's EGL window when there is no display; return True when rendering off-screen."""
    if has_display():
        return False
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    return True


@functools.lru_cache(maxsize=1)
def rendering_available(timeout: float = 180.0) -> tuple[bool, str]:
    """Try a tiny off-screen render in a subprocess.

    Returns
    -------
    (ok, reason) : (bool, str)
        ``reason`` explains a failure (crash signal, missing library, time-out).
    """
    env = dict(os.environ)
    if not has_display():
        env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    try:
        result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                                timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False, f"the rendering probe did not finish within {timeout:.0f} s"
    if result.returncode == 0 and "ok" in result.stdout:
        return True, "ok"
    tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
    how = (f"crashed with signal {-result.returncode}" if result.returncode < 0
           else f"exited with code {result.returncode}")
    return False, f"the rendering probe {how}: {' | '.join(tail)}"
