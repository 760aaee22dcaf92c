"""n-step returns: folded by hand, exact at episode ends, never across a break in the chain."""

import numpy as np
import pytest
import torch

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.ddpg import DDPG
from ddpg_ros.core.nstep import NStepFolder
from ddpg_ros.core.replay_buffer import Batch, ReplayBuffer

GAMMA = 0.5


def _s(x: float) -> np.ndarray:
    return np.array([x])


def _chain(folder: NStepFolder, start: int, rewards: list[float], last_terminated=False,
           last_truncated=False) -> list:
    """Step s_start -> s_start+1 -> ... with the given rewards; return what was folded."""
    out = []
    for k, reward in enumerate(rewards):
        end = k == len(rewards) - 1
        out += folder.add(_s(start + k), _s(10 * (start + k)), reward, _s(start + k + 1),
                          terminated=last_terminated and end, truncated=last_truncated and end)
    return out


def _rows(folded: list) -> list[tuple]:
    return [(t.obs[0], t.action[0], t.reward, t.next_obs[0], t.terminated, t.horizon)
            for t in folded]


def test_three_steps_fold_into_one_discounted_return_that_bootstraps_three_ahead() -> None:
    folder = NStepFolder(3, GAMMA)
    out = _chain(folder, 0, [1.0, 2.0, 4.0, 8.0])
    # (s0, a0, 1 + 0.5*2 + 0.25*4 = 3, s3), then (s1, a1, 2 + 0.5*4 + 0.25*8 = 6, s4).
    assert _rows(out) == [(0.0, 0.0, 3.0, 3.0, False, 3), (1.0, 10.0, 6.0, 4.0, False, 3)]
    assert len(folder) == 2


def test_a_termination_folds_the_rest_without_bootstrap() -> None:
    folder = NStepFolder(3, GAMMA)
    out = _chain(folder, 0, [1.0, 2.0, 4.0, 8.0], last_terminated=True)
    assert _rows(out)[1:] == [(1.0, 10.0, 6.0, 4.0, True, 3), (2.0, 20.0, 8.0, 4.0, True, 2),
                              (3.0, 30.0, 8.0, 4.0, True, 1)]
    assert len(folder) == 0


def test_a_truncation_folds_the_rest_and_keeps_bootstrapping_from_the_last_state() -> None:
    folder = NStepFolder(3, GAMMA)
    out = _chain(folder, 0, [1.0, 2.0], last_truncated=True)
    assert _rows(out) == [(0.0, 0.0, 2.0, 2.0, False, 2), (1.0, 10.0, 2.0, 2.0, False, 1)]


def test_a_transition_that_does_not_start_where_the_last_ended_breaks_the_chain() -> None:
    # A reset, a refused or stale state skipped, another robot's transition: all look alike.
    folder = NStepFolder(3, GAMMA)
    out = _chain(folder, 0, [1.0, 2.0])
    assert out == []
    out = _chain(folder, 7, [4.0])  # s7 is not s2: fold s0, s1 up to s2, then start anew
    assert _rows(out) == [(0.0, 0.0, 2.0, 2.0, False, 2), (1.0, 10.0, 2.0, 2.0, False, 1)]
    assert len(folder) == 1
    assert _rows(folder.flush()) == [(7.0, 70.0, 4.0, 8.0, False, 1)]


def test_one_step_passes_every_transition_through_unchanged() -> None:
    folder = NStepFolder(1, GAMMA)
    assert _rows(_chain(folder, 0, [1.0, 2.0])) == [(0.0, 0.0, 1.0, 1.0, False, 1),
                                                    (1.0, 10.0, 2.0, 2.0, False, 1)]
    with pytest.raises(ValueError, match='n_step=0 must be >= 1'):
        NStepFolder(0, GAMMA)


def test_the_target_discounts_by_gamma_to_the_horizon() -> None:
    config = DDPGConfig(gamma=GAMMA, device='cpu', n_step=3, hidden_sizes=(4,))
    agent = DDPG(1, np.array([-1.0]), np.array([1.0]), config)
    next_obs = torch.tensor([[0.3], [0.3], [0.3]])
    with torch.no_grad():
        next_q = agent.critic_target(next_obs, agent.actor_target(next_obs))
    batch = Batch(obs=torch.zeros(3, 1), actions=torch.zeros(3, 1),
                  rewards=torch.tensor([3.0, 2.0, 1.0]), next_obs=next_obs,
                  terminated=torch.tensor([0.0, 0.0, 1.0]), horizon=torch.tensor([3.0, 2.0, 1.0]))
    y = agent.critic_target_values(batch)
    torch.testing.assert_close(y, torch.stack([3.0 + 0.125 * next_q[0], 2.0 + 0.25 * next_q[1],
                                               torch.tensor(1.0)]))


def test_the_buffer_keeps_horizons_and_reads_files_from_before_them(tmp_path) -> None:
    buffer = ReplayBuffer(8, 1, 1)
    buffer.add(_s(0), _s(0), 3.0, _s(3), False, horizon=3)
    buffer.add(_s(3), _s(0), 1.0, _s(4), True)
    path = buffer.save(tmp_path / 'buffer.npz')
    again = ReplayBuffer(8, 1, 1)
    again.load(path)
    assert again.horizon[:2].tolist() == [3.0, 1.0]
    with np.load(path) as data:
        old = {k: data[k] for k in data.files if k != 'horizon'}
    np.savez(tmp_path / 'old.npz', **old)
    again.load(tmp_path / 'old.npz')
    assert again.horizon[:2].tolist() == [1.0, 1.0]


def test_held_back_steps_survive_a_checkpoint_and_fold_at_the_resumed_runs_first_step() -> None:
    folder = NStepFolder(3, GAMMA)
    _chain(folder, 0, [1.0, 2.0])
    saved = folder.state_dict()
    resumed = NStepFolder(3, GAMMA)
    resumed.load_state_dict(saved)
    assert len(resumed) == 2
    # The resumed run starts a new episode: its first transition breaks the chain.
    out = resumed.add(_s(50), _s(0), 1.0, _s(51), False)
    assert _rows(out) == [(0.0, 0.0, 2.0, 2.0, False, 2), (1.0, 10.0, 2.0, 2.0, False, 1)]


def test_a_step_the_robot_did_not_store_breaks_the_chain_in_the_control_loop() -> None:
    # The agent's control step on a 25 Hz timer: the tick after stamp 2 came two periods
    # late, so the step from 2 to 4 is acted on but not stored. The folds must not span it.
    from ddpg_ros.control.episodes import Episodes
    from ddpg_ros.control.safety import CommandFilter, SafeCommand
    from ddpg_ros.control.step import ControlStep
    from ddpg_ros.tasks import RobotState, make_task

    task = make_task('inverted_pendulum')
    folder = NStepFolder(3, GAMMA)
    folded: list = []

    class FoldingPolicy:
        training = True
        last_wait = 0.0

        def act(self, obs, explore, env_steps):
            return np.array([0.0])

        def store(self, t, env_steps):
            folded.extend(folder.add(t.obs, t.action, t.reward, t.next_obs, t.terminated))

        def episode_ended(self, episode_return, env_steps):
            pass

    step = ControlStep(task, FoldingPolicy(), Episodes(task, 1e6),
                       CommandFilter(task.action_low, task.action_high),
                       SafeCommand(task, 'effort'), period=task.control_dt)
    for t in (0, 1, 2, 4, 5, 6, 7):
        step.step(RobotState([0.0, 0.001 * t], [0.0, 0.0], [0.0, 0.0], t * task.control_dt))
    hinge = [(round(f.obs[1] * 1000), round(f.next_obs[1] * 1000), f.horizon) for f in folded]
    # 0 -> 2 and 1 -> 2 folded at the break; 4 -> 7 a full fold of three.
    assert hinge == [(0, 2, 2), (1, 2, 1), (4, 7, 3)]
    assert [f.reward for f in folded] == pytest.approx([1 + GAMMA, 1.0, 1 + GAMMA + GAMMA ** 2])
