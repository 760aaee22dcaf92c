"""
Pictures of a MuJoCo simulation, made away from the thread that steps it; no ROS.

A :class:`RenderLoop` runs in a thread of its own. At its rate it asks the stepping side for a
*snapshot*: a callable that, under the stepping side's lock, copies the state into the loop's
own ``MjData`` (:func:`copy_state`, a few arrays) and returns the time to stamp the picture
with. Everything slow (``mj_forward`` of the copy, the scene, OpenGL, reading the pixels)
happens after that, on the copy, outside the lock; MuJoCo releases the GIL while it renders.
So the stepping thread waits at most for a copy of qpos and qvel, never for a picture.

OpenGL without a display needs a headless backend, which MuJoCo chooses once, from
``MUJOCO_GL``, when it is first imported: :func:`select_gl_backend` sets that variable and
must run before anything imports ``mujoco``. That is why this module imports MuJoCo inside
the functions that use it, not at the top.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import mujoco

HEADLESS_BACKENDS = ('egl', 'osmesa')
"""Headless OpenGL backends in order of preference: EGL uses a GPU when there is one."""
TRACKING_CAMERA = 'tracking_camera'
"""The name (and ``frame_id``) of the default view: a camera that follows the robot."""
MAX_IMAGE_SIZE = 4096
VIEWER_RATE = 30.0
"""Hz at which the interactive viewer is given new states."""
START_TIMEOUT = 60.0
"""Seconds the rendering thread gets to set up OpenGL before start gives up."""
GL_HINT = ('without a display, set MUJOCO_GL=egl (GPU, or Mesa EGL) or MUJOCO_GL=osmesa '
           'PYOPENGL_PLATFORM=osmesa (Debian: apt install libosmesa6; pip install PyOpenGL)')


class RenderingError(RuntimeError):
    """Rendering cannot start or go on; the message is one line that says why."""


@dataclass(frozen=True)
class RenderSettings:
    """
    What to render, these the defaults; ``mujoco_sim`` has one parameter per field.

    :raises ValueError: a rate or size out of range, naming the field and the value.
    """

    image_rate: float = field(default=0.0, metadata={
        'description': 'Hz of pictures on ~/image (sensor_msgs/Image, rgb8); 0.0 = none'})
    image_width: int = field(default=320, metadata={'description': 'picture width, pixels'})
    image_height: int = field(default=240, metadata={'description': 'picture height, pixels'})
    camera: str = field(default='', metadata={
        'description': "a camera of the model; '' = a camera that follows the robot"})
    viewer: bool = field(default=False, metadata={
        'description': "open MuJoCo's interactive viewer (needs a display)"})

    def __post_init__(self) -> None:
        if not (math.isfinite(self.image_rate) and self.image_rate >= 0.0):
            raise ValueError(f'image_rate must be >= 0 Hz (0 = no pictures), got '
                             f'{self.image_rate}')
        for name in ('image_width', 'image_height'):
            if not 1 <= getattr(self, name) <= MAX_IMAGE_SIZE:
                raise ValueError(f'{name} must be 1..{MAX_IMAGE_SIZE} pixels, got '
                                 f'{getattr(self, name)}')

    @property
    def wanted(self) -> bool:
        """Whether anything is to be rendered or shown at all."""
        return self.image_rate > 0.0 or self.viewer


def _one_line(exc: BaseException) -> str:
    text = '; '.join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


def display_available(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a window can be opened: ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set."""
    return bool(environ.get('DISPLAY') or environ.get('WAYLAND_DISPLAY'))


def _egl_device_found() -> bool:
    # The question MuJoCo's EGL backend asks first, asked through ctypes so that nothing is
    # imported that would fix PyOpenGL's platform before the choice is made.
    name = ctypes.util.find_library('EGL')
    if name is None:
        return False
    try:
        egl = ctypes.CDLL(name)
        get_proc_address = egl.eglGetProcAddress
        get_proc_address.restype = ctypes.c_void_p
        get_proc_address.argtypes = [ctypes.c_char_p]
        address = get_proc_address(b'eglQueryDevicesEXT')
        if not address:
            return False
        query_devices = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_int, ctypes.c_void_p,
                                         ctypes.POINTER(ctypes.c_int))(address)
        count = ctypes.c_int(0)
        return bool(query_devices(0, None, ctypes.byref(count))) and count.value > 0
    except (OSError, AttributeError):
        return False


def headless_backends_found() -> list[str]:
    """Return the headless backends whose libraries this machine has, best first."""
    found = ['egl'] if _egl_device_found() else []
    if ctypes.util.find_library('OSMesa'):
        found.append('osmesa')
    return found


def choose_gl_backend(environ: Mapping[str, str], headless: Sequence[str]) -> str | None:
    """
    Return the ``MUJOCO_GL`` to render with, or None to leave MuJoCo's default (GLFW).

    The user's ``MUJOCO_GL`` wins; then a ``PYOPENGL_PLATFORM`` of egl or osmesa (MuJoCo
    refuses a backend that disagrees with it); with a display, GLFW; otherwise the first of
    ``headless`` (see :func:`headless_backends_found`), or None when there is none.
    """
    if environ.get('MUJOCO_GL'):
        return environ['MUJOCO_GL']
    platform = environ.get('PYOPENGL_PLATFORM', '').lower()
    if platform in HEADLESS_BACKENDS:
        return platform
    if display_available(environ):
        return None
    return next(iter(headless), None)


def select_gl_backend(environ: MutableMapping[str, str] = os.environ) -> str:
    """
    Set ``MUJOCO_GL`` (and ``PYOPENGL_PLATFORM``) for rendering here; return the backend.

    Must run before ``mujoco`` is first imported in this process. Once it has been, the
    backend is fixed and this only reports it.

    :return: ``'egl'``, ``'osmesa'``, ``'glfw'`` (MuJoCo's default) or the user's own value.
    """
    if 'mujoco' in sys.modules:
        return environ.get('MUJOCO_GL') or 'glfw'
    backend = choose_gl_backend(environ, headless_backends_found())
    if backend is None:
        return 'glfw'
    environ['MUJOCO_GL'] = backend
    if backend in HEADLESS_BACKENDS:
        environ.setdefault('PYOPENGL_PLATFORM', backend)
    return backend


def viewer_unavailable_reason(environ: Mapping[str, str] = os.environ) -> str:
    """Why MuJoCo's interactive viewer cannot open here; '' when it can."""
    if display_available(environ):
        return ''
    return 'no display (DISPLAY and WAYLAND_DISPLAY are unset)'


def copy_state(source: mujoco.MjData, target: mujoco.MjData) -> None:
    """Copy what a picture depends on (time, qpos, qvel, act, mocap poses) between MjData."""
    target.time = source.time
    for name in ('qpos', 'qvel', 'act', 'mocap_pos', 'mocap_quat'):
        np.copyto(getattr(target, name), getattr(source, name))


def make_camera(model: mujoco.MjModel, camera: str,
                defaults: Mapping[str, Any] | None = None) -> mujoco.MjvCamera:
    """
    Return the model's camera named ``camera``, or for '' one that follows the robot.

    The following camera tracks body ``trackbodyid`` (default 1, the robot's root body) and
    takes ``distance``, ``azimuth`` and ``elevation`` from ``defaults`` (a Gymnasium env's
    ``default_camera_config``), else from MuJoCo's default free view of the model.

    :raises ValueError: the model has no camera named ``camera``.
    """
    import mujoco

    view = mujoco.MjvCamera()
    if camera:
        camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if camera_id < 0:
            names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i)
                     for i in range(model.ncam)]
            raise ValueError(f"camera {camera!r} is not in the model (its cameras: "
                             f"{names or 'none'}; '' follows the robot)")
        view.type = mujoco.mjtCamera.mjCAMERA_FIXED
        view.fixedcamid = camera_id
        return view
    defaults = defaults or {}
    mujoco.mjv_defaultFreeCamera(model, view)
    view.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    view.trackbodyid = int(defaults.get('trackbodyid', 1 if model.nbody > 1 else 0))
    for key in ('distance', 'azimuth', 'elevation'):
        if key in defaults:
            setattr(view, key, float(defaults[key]))
    return view


class FrameRenderer:
    """
    Offscreen RGB pictures of states of one model; use it from one thread only.

    :raises RenderingError: OpenGL cannot start (the message names the backend and the fix).
    """

    def __init__(self, model: mujoco.MjModel, width: int, height: int,
                 camera: mujoco.MjvCamera) -> None:
        import mujoco

        # The offscreen buffer must hold the picture; this is the renderer's own copy of the
        # model, so the simulation's is left as it was.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self._camera = camera
        self._frame = np.empty((height, width, 3), dtype=np.uint8)
        try:
            self._renderer = mujoco.Renderer(model, height=height, width=width)
        except Exception as exc:  # noqa: BLE001 - GL stacks fail with all kinds of errors
            backend = os.environ.get('MUJOCO_GL', '') or 'glfw (MUJOCO_GL unset)'
            raise RenderingError(f'cannot render with OpenGL backend {backend}: '
                                 f'{_one_line(exc)}; {GL_HINT}') from None

    def render(self, data: mujoco.MjData) -> np.ndarray:
        """
        Return the picture of ``data`` (forwarded already): uint8, (height, width, 3).

        The array is reused by the next call; copy it to keep it.
        """
        self._renderer.update_scene(data, camera=self._camera)
        return self._renderer.render(out=self._frame)

    def close(self) -> None:
        """Free the OpenGL context; from the thread that made the renderer."""
        self._renderer.close()


Snapshot = Callable[['mujoco.MjData'], int]
"""
Copies the live state into the given MjData under the stepping side's lock (e.g. with
:func:`copy_state`) and returns the stamp for a picture of it, in nanoseconds."""


class RenderLoop:
    """
    A thread that renders snapshots of a simulation at a fixed rate, and feeds a viewer.

    A viewer is opened only where there is a display; elsewhere :attr:`viewer_error` says why
    not and the loop goes on without it.

    :param model: the simulation's model; the loop works on its own copy.
    :param snapshot: see :data:`Snapshot`; called from the loop's thread.
    :param on_frame: gets each picture (reused buffer) and its stamp, in the loop's thread.
    :param on_error: gets one line if rendering fails after it started; the loop then ends.
    :param settings: rate, size, camera ('' for :func:`make_camera`'s following view), viewer.
    :param camera_defaults: a Gymnasium env's ``default_camera_config``, or None.
    :param wanted: asked in the loop's thread when a picture is due; False skips that picture
        and, with no viewer open, its snapshot (a publisher nobody subscribes to costs nothing).
    :raises ValueError: a camera the model does not have.
    """

    def __init__(self, model: mujoco.MjModel, snapshot: Snapshot,
                 on_frame: Callable[[np.ndarray, int], None], on_error: Callable[[str], None],
                 settings: RenderSettings,
                 camera_defaults: Mapping[str, Any] | None = None,
                 wanted: Callable[[], bool] = lambda: True) -> None:
        import mujoco

        self._model = copy.copy(model)
        self._data = mujoco.MjData(self._model)
        self._camera = make_camera(self._model, settings.camera, camera_defaults)
        self._snapshot, self._on_frame, self._on_error = snapshot, on_frame, on_error
        self._wanted = wanted
        self._rate, self._size = settings.image_rate, (settings.image_width,
                                                       settings.image_height)
        self.viewer_error = viewer_unavailable_reason() if settings.viewer else ''
        """Why a requested viewer is not shown ('' if it is, or none was asked for)."""
        self._viewer_wanted = settings.viewer and not self.viewer_error
        self._stop = threading.Event()
        self._started = threading.Event()
        self._start_error = ''
        self._thread = threading.Thread(target=self._run, name='render_loop', daemon=True)
        self.frames = 0
        """Pictures handed to ``on_frame`` so far."""

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """
        Start the thread and wait until it can render.

        :raises RenderingError: OpenGL or the viewer setup failed, or took over ``timeout`` s.
        """
        self._thread.start()
        if not self._started.wait(timeout):
            self._stop.set()
            raise RenderingError(f'rendering did not start within {timeout:g} s; {GL_HINT}')
        if self._start_error:
            raise RenderingError(self._start_error)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait up to ``timeout`` s for it."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _open(self) -> tuple[FrameRenderer | None, Any]:
        renderer = None
        if self._rate > 0.0:
            renderer = FrameRenderer(self._model, *self._size, self._camera)
        viewer = None
        if self._viewer_wanted:
            try:
                import mujoco.viewer
                viewer = mujoco.viewer.launch_passive(self._model, self._data)
            except Exception as exc:  # noqa: BLE001 - a viewer is a convenience, never fatal
                self.viewer_error = f'MuJoCo viewer did not open: {_one_line(exc)}'
        return renderer, viewer

    def _run(self) -> None:
        import mujoco

        try:
            renderer, viewer = self._open()
        except RenderingError as exc:
            self._start_error = str(exc)
            self._started.set()
            return
        self._started.set()
        if renderer is None and viewer is None:
            return  # a viewer alone was asked for, and it did not open
        frame_period = 1.0 / self._rate if self._rate > 0.0 else math.inf
        tick = min(frame_period, 1.0 / VIEWER_RATE) if viewer is not None else frame_period
        next_tick = next_frame = time.monotonic()
        try:
            while not self._stop.wait(max(0.0, next_tick - time.monotonic())):
                now = time.monotonic()
                picture = renderer is not None and now >= next_frame
                if picture:
                    # Keep the rate without bursts: a late picture does not make the next
                    # one come early. A picture nobody wants is skipped, not delayed.
                    next_frame = max(next_frame + frame_period, now)
                    picture = self._wanted()
                if picture or viewer is not None:
                    stamp_ns = self._snapshot(self._data)
                    mujoco.mj_forward(self._model, self._data)
                if viewer is not None:
                    if not viewer.is_running():  # its window was closed
                        viewer.close()
                        viewer = None
                        if renderer is None:
                            break
                    else:
                        viewer.sync()
                if picture:
                    self._on_frame(renderer.render(self._data), stamp_ns)
                    self.frames += 1
                next_tick = max(next_tick + tick, now) if viewer is not None else next_frame
        except Exception as exc:  # noqa: BLE001 - reported in one line, then the loop ends
            if not self._stop.is_set():
                self._on_error(f'rendering stopped: {_one_line(exc)}')
        finally:
            if renderer is not None:
                renderer.close()
            if viewer is not None:
                viewer.close()
