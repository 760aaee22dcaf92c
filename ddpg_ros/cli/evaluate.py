"""
``ddpg-eval``: run a checkpoint's actor without noise on a Gymnasium environment.

With ``--randomize`` the environment perturbs commands, physics and observations as the
profile says (:mod:`ddpg_ros.sim.randomization`). Standard output ends with
``full_episodes: <k>/<n>`` (episodes that reached the time limit) and, last,
``mean_return: <float>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from ddpg_ros.core.checkpoint import load_checkpoint
from ddpg_ros.cli.common import HelpFormatter, run_cli
from ddpg_ros.sim.envs import make_env, spec_for_env
from ddpg_ros.sim.randomization_profile import LEVEL_NAMES, load_profile
from ddpg_ros.cli.evaluation import evaluate, write_gif


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='ddpg-eval', description=__doc__.split('\n\n')[0],
        formatter_class=HelpFormatter)
    parser.add_argument('--checkpoint', required=True, type=Path, help='checkpoint file')
    parser.add_argument('--env', default=None,
                        help="Gymnasium environment id (default: the checkpoint's)")
    parser.add_argument('--episodes', type=int, default=10, help='episodes to run')
    parser.add_argument('--seed', type=int, default=0,
                        help='episode i starts from env.reset(seed=seed + i)')
    parser.add_argument('--randomize', default='', metavar='PROFILE',
                        help=f"perturb the robot: {', '.join(LEVEL_NAMES)} or a YAML profile "
                             '(e.g. the timing.yaml a ddpg_agent wrote) (default: none)')
    parser.add_argument('--device', default='cpu', choices=('auto', 'cpu', 'cuda'),
                        help="where the actor runs: 'auto' is CUDA when present")
    parser.add_argument('--video', type=Path, default=None,
                        help='write the first episode as an animated GIF to this file')
    parser.add_argument('--width', type=int, default=320, help='video width in pixels')
    parser.add_argument('--height', type=int, default=240, help='video height in pixels')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.video is not None:
        _use_offscreen_gl()

    def run() -> int:
        if args.episodes < 1:
            raise ValueError(f'episodes={args.episodes} must be >= 1')
        checkpoint = load_checkpoint(args.checkpoint)
        env_id = args.env or checkpoint.spec.env_id
        if not env_id:
            raise ValueError(f'checkpoint {args.checkpoint} names no Gymnasium env: pass --env')
        profile = load_profile(args.randomize)
        last = checkpoint.config.observe_last_action
        env = make_env(env_id, randomize=profile, seed=args.seed, observe_last_action=last)
        checkpoint.spec.check_matches(spec_for_env(env_id, env, last), args.checkpoint)
        agent = checkpoint.build_agent(device=args.device, optimizers=False)
        print(f'randomization: {profile.describe()}', flush=True)
        full: list[bool] = []
        returns = evaluate(agent.act, env, args.episodes, args.seed, full=full)
        env.close()
        for i, ret in enumerate(returns):
            print(f'episode {i}: return {ret:.3f}' + ('' if full[i] else ' (ended early)'))
        print(f'std_return: {np.std(returns):.3f}')
        if args.video is not None:
            print(f'video: {_film(agent.act, env_id, args, last)}')
        print(f'full_episodes: {sum(full)}/{len(full)}')
        print(f'mean_return: {np.mean(returns):.6f}')
        return 0

    return run_cli('ddpg-eval', run)


def _use_offscreen_gl() -> None:
    """
    Pick osmesa (CPU rendering) when no GL backend is configured and there is no display.

    MuJoCo reads ``MUJOCO_GL`` when it is first imported, so this runs before any env exists.
    """
    if 'MUJOCO_GL' not in os.environ and 'DISPLAY' not in os.environ:
        os.environ['MUJOCO_GL'] = 'osmesa'
        os.environ.setdefault('PYOPENGL_PLATFORM', 'osmesa')


def _film(policy, env_id: str, args: argparse.Namespace, observe_last_action: bool) -> Path:
    """Render one episode offscreen into an animated GIF."""
    env = make_env(env_id, render_mode='rgb_array', randomize=args.randomize, seed=args.seed,
                   observe_last_action=observe_last_action, width=args.width,
                   height=args.height)
    frames: list[np.ndarray] = []
    evaluate(policy, env, 1, args.seed, frames=frames)
    fps = env.metadata.get('render_fps', 30)
    env.close()
    return write_gif(frames, args.video, fps)


if __name__ == '__main__':
    sys.exit(main())
