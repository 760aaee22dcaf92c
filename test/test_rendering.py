"""
rendering: backend choice, pictures of a copied state, and the thread that makes them; no ROS.

The pictures are real: MuJoCo renders offscreen with the backend that conftest chose for this
process (EGL or OSMesa, on the CPU here).
"""

from __future__ import annotations

import copy
import threading
import time

import mujoco
import numpy as np
import pytest

from ddpg_ros.sim.rendering import (FrameRenderer, RenderLoop, RenderSettings, choose_gl_backend,
                                    copy_state, make_camera, select_gl_backend)
from ddpg_ros.sim.simulation import Simulation

WIDTH, HEIGHT = 160, 120


@pytest.mark.parametrize('environ, headless, expected', [
    ({'MUJOCO_GL': 'osmesa'}, ['egl'], 'osmesa'),
    ({'MUJOCO_GL': 'egl', 'DISPLAY': ':0'}, [], 'egl'),
    ({'PYOPENGL_PLATFORM': 'osmesa'}, ['egl', 'osmesa'], 'osmesa'),
    ({'DISPLAY': ':0'}, ['egl', 'osmesa'], None),
    ({'WAYLAND_DISPLAY': 'wayland-0'}, ['egl'], None),
    ({}, ['egl', 'osmesa'], 'egl'),
    ({}, ['osmesa'], 'osmesa'),
    ({'DISPLAY': ''}, ['osmesa'], 'osmesa'),
    ({}, [], None),
], ids=['user MUJOCO_GL', 'user MUJOCO_GL over display', 'PyOpenGL platform', 'X display',
        'Wayland', 'headless prefers EGL', 'headless OSMesa', 'empty DISPLAY', 'nothing'])
def test_gl_backend_choice(environ: dict[str, str], headless: list[str],
                           expected: str | None) -> None:
    assert choose_gl_backend(environ, headless) == expected


def test_selection_only_reports_once_mujoco_is_imported() -> None:
    # MuJoCo is imported in this process: setting MUJOCO_GL now would change nothing.
    environ = {'PATH': '/usr/bin'}
    assert select_gl_backend(environ) == 'glfw'
    assert environ == {'PATH': '/usr/bin'}
    assert select_gl_backend({'MUJOCO_GL': 'osmesa'}) == 'osmesa'


@pytest.mark.parametrize('field, value, message', [
    ('image_rate', -1.0, 'image_rate must be >= 0 Hz (0 = no pictures), got -1.0'),
    ('image_rate', float('nan'), 'image_rate must be >= 0 Hz (0 = no pictures), got nan'),
    ('image_rate', float('inf'), 'image_rate must be >= 0 Hz (0 = no pictures), got inf'),
    ('image_width', 0, 'image_width must be 1..4096 pixels, got 0'),
    ('image_height', -240, 'image_height must be 1..4096 pixels, got -240'),
    ('image_width', 5000, 'image_width must be 1..4096 pixels, got 5000'),
])
def test_bad_settings_name_the_value(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError) as info:
        RenderSettings(**{field: value})
    assert str(info.value) == message


def test_settings_say_whether_anything_is_wanted() -> None:
    assert not RenderSettings().wanted
    assert RenderSettings(image_rate=0.5).wanted
    assert RenderSettings(viewer=True).wanted


@pytest.fixture(scope='module')
def cheetah() -> Simulation:
    sim = Simulation('HalfCheetah-v5', seed=0)
    yield sim
    sim.close()


def test_unknown_camera_names_the_model_cameras(cheetah: Simulation) -> None:
    with pytest.raises(ValueError, match=r"camera 'overhead' is not in the model "
                                         r"\(its cameras: \['track'\]"):
        make_camera(cheetah.model, 'overhead')


def test_default_camera_follows_the_robot_as_gymnasium_frames_it(cheetah: Simulation) -> None:
    camera = make_camera(cheetah.model, '', cheetah.camera_defaults)
    assert camera.type == mujoco.mjtCamera.mjCAMERA_TRACKING
    assert camera.trackbodyid == 1  # the torso
    assert camera.distance == 4.0  # HalfCheetah-v5's default_camera_config
    named = make_camera(cheetah.model, 'track')
    assert (named.type, named.fixedcamid) == (mujoco.mjtCamera.mjCAMERA_FIXED, 0)


def _robot_pixels(model: mujoco.MjModel, data: mujoco.MjData, camera: str,
                  defaults: dict) -> float:
    """Return the share of the picture that changes when the robot's geoms are hidden."""
    pictures = []
    for visible in (True, False):
        copied = copy.copy(model)
        if not visible:
            copied.geom_rgba[copied.geom_bodyid > 0, 3] = 0.0
        renderer = FrameRenderer(copied, WIDTH, HEIGHT, make_camera(copied, camera, defaults))
        try:
            pictures.append(renderer.render(data).copy())
        finally:
            renderer.close()
    assert pictures[0].shape == (HEIGHT, WIDTH, 3) and pictures[0].dtype == np.uint8
    return float(np.any(pictures[0] != pictures[1], axis=2).mean())


@pytest.mark.parametrize('camera', ['', 'track'])
def test_the_robot_stays_in_the_picture_when_it_runs_off(cheetah: Simulation,
                                                         camera: str) -> None:
    data = mujoco.MjData(cheetah.model)
    copy_state(cheetah.data, data)
    data.qpos[0] = 25.0  # rootx: far from where any fixed view would look
    mujoco.mj_forward(cheetah.model, data)
    share = _robot_pixels(cheetah.model, data, camera, cheetah.camera_defaults)
    assert 0.01 < share < 0.9, share


def test_a_copy_of_the_state_is_a_snapshot(cheetah: Simulation) -> None:
    copied = mujoco.MjData(cheetah.model)
    for _ in range(3):
        cheetah.step(np.full(6, 0.5))
    copy_state(cheetah.data, copied)
    np.testing.assert_array_equal(copied.qpos, cheetah.data.qpos)
    np.testing.assert_array_equal(copied.qvel, cheetah.data.qvel)
    assert copied.time == cheetah.data.time
    before = copied.qpos.copy()
    cheetah.step(np.full(6, 0.5))
    np.testing.assert_array_equal(copied.qpos, before)  # the live state moved on alone


def test_loop_renders_at_its_rate_from_snapshots_taken_in_its_thread(
        cheetah: Simulation) -> None:
    rate, wanted_frames = 10.0, 20
    lock = threading.Lock()
    snapshot_threads: set[str] = set()
    frames: list[tuple[np.ndarray, int]] = []
    delivered: list[float] = []
    errors: list[str] = []

    def snapshot(target: mujoco.MjData) -> int:
        snapshot_threads.add(threading.current_thread().name)
        with lock:
            copy_state(cheetah.data, target)
            return round(cheetah.data.time * 1e9)

    def on_frame(frame: np.ndarray, stamp: int) -> None:
        frames.append((frame.copy(), stamp))
        delivered.append(time.monotonic())

    loop = RenderLoop(cheetah.model, snapshot, on_frame, errors.append,
                      RenderSettings(image_rate=rate, image_width=WIDTH, image_height=HEIGHT),
                      cheetah.camera_defaults)
    loop.start()
    try:
        started = time.monotonic()
        while len(frames) < wanted_frames and time.monotonic() - started < 30.0:
            with lock:  # the stepping side, as mujoco_sim steps
                cheetah.step(np.sin(np.arange(6) + 10 * cheetah.time))
            time.sleep(0.005)
        elapsed = time.monotonic() - started
        count = len(frames)
    finally:
        loop.stop()
    stopped_at = len(frames)
    assert not errors
    assert snapshot_threads == {'render_loop'}
    # Never faster than the rate, and at it: the median interval, which a stall of the
    # machine (a late picture is skipped, never made up) leaves alone.
    assert count >= wanted_frames, (count, elapsed)
    assert count <= rate * elapsed + 2, (count, elapsed)
    interval = float(np.median(np.diff(delivered[:count])))
    assert interval == pytest.approx(1.0 / rate, rel=0.2), interval
    assert loop.frames == len(frames)
    stamps = [stamp for _, stamp in frames]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame, _ in frames)
    assert not np.array_equal(frames[0][0], frames[-1][0])  # the pictures follow the physics
    time.sleep(0.3)
    assert len(frames) == stopped_at  # nothing after stop
    assert not any(t.name == 'render_loop' for t in threading.enumerate())


def test_loop_takes_no_snapshot_and_renders_nothing_while_no_one_wants_pictures(
        cheetah: Simulation) -> None:
    rate = 20.0
    wanted = threading.Event()
    asked, snapshots, frames = [0], [0], []

    def want() -> bool:
        asked[0] += 1
        return wanted.is_set()

    def snapshot(target: mujoco.MjData) -> int:
        snapshots[0] += 1
        copy_state(cheetah.data, target)
        return snapshots[0]

    loop = RenderLoop(cheetah.model, snapshot, lambda frame, stamp: frames.append(stamp),
                      print, RenderSettings(image_rate=rate, image_width=WIDTH,
                                            image_height=HEIGHT), wanted=want)

    def asked_again(times: int = 1) -> None:
        # The loop asks, then draws and hands over the picture, then asks again: once it has
        # asked again, the pictures asked for before are all here.
        target = asked[0] + times
        deadline = time.monotonic() + 10.0
        while asked[0] < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert asked[0] >= target, 'the loop stopped asking'

    loop.start()
    try:
        started = time.monotonic()
        asked_again(5)
        unwanted = (asked[0], snapshots[0], len(frames), time.monotonic() - started)
        wanted.set()
        deadline = time.monotonic() + 10.0
        while len(frames) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        wanted.clear()
        asked_again()  # a picture already being drawn arrives
        count = len(frames)
        asked_again(3)
    finally:
        loop.stop()
    # Asked about once a frame period, not more often ...
    assert unwanted[0] <= rate * unwanted[3] + 2, unwanted
    # ... and nothing was copied or drawn.
    assert unwanted[1:3] == (0, 0), unwanted
    # Wanted again, pictures come at once, and stop when no longer wanted.
    assert len(frames) >= 5 and frames[0] == 1, frames
    assert len(frames) == count == loop.frames


def test_viewer_without_a_display_says_why_and_the_loop_goes_on(
        cheetah: Simulation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    frames: list[int] = []
    loop = RenderLoop(cheetah.model, lambda target: 7, lambda frame, stamp: frames.append(stamp),
                      print, RenderSettings(image_rate=20.0, viewer=True))
    assert loop.viewer_error == 'no display (DISPLAY and WAYLAND_DISPLAY are unset)'
    loop.start()
    try:
        deadline = time.monotonic() + 10.0
        while not frames and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        loop.stop()
    assert frames and frames[0] == 7
    # A viewer alone, where none can open: nothing to do, and no thread left running.
    alone = RenderLoop(cheetah.model, lambda target: 0, lambda frame, stamp: None, print,
                       RenderSettings(viewer=True))
    alone.start()
    alone.stop()
    assert alone.frames == 0 and alone.viewer_error
