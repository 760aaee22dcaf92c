"""Parameter files of the tasks that read more than joint states."""

from pathlib import Path
from typing import Any

import yaml

from ddpg_ros.core.config import DDPGConfig
from ddpg_ros.core.presets import preset_for
from ddpg_ros.sim.simulation import Simulation
from ddpg_ros.sim.sensors import SimSensors
from ddpg_ros.tasks import make_task

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / 'config'


def ros_parameters(path: Path) -> dict[str, dict[str, Any]]:
    """Return each node's ``ros__parameters`` from a parameter file."""
    with open(path, encoding='utf-8') as stream:
        return {node: values['ros__parameters'] for node, values in yaml.safe_load(stream).items()}


def test_ant_config_simulates_ant_v5_and_leaves_the_learner_to_its_preset() -> None:
    params = ros_parameters(CONFIG / 'ant.yaml')
    sim, agent = params['mujoco_sim'], params['ddpg_agent']
    task = make_task(agent['task'])
    assert (sim['model'], sim['mode'], agent['mode']) == ('Ant-v5', 'lockstep', 'train')
    assert task.env_id == sim['model'] and preset_for(task.env_id, required=True)
    assert not set(agent) & set(DDPGConfig.__dataclass_fields__) - {'seed', 'device'}
    # The simulation publishes every topic the task reads, on the topic of the same name.
    simulation = Simulation(sim['model'], seed=0)
    topics = SimSensors(simulation.model).topics
    assert all(topics.get(source.name) == source.kind for source in task.sources)
    simulation.close()


def test_balancer_config_runs_the_shipped_model_at_the_tasks_control_period() -> None:
    from ddpg_ros.tasks.balancer import FRAME_SKIP, MODEL_PATH

    params = ros_parameters(CONFIG / 'balancer.yaml')
    sim, agent = params['mujoco_sim'], params['ddpg_agent']
    task = make_task(agent['task'])
    assert (agent['mode'], sim['mode'], task.name, task.env_id) == (
        'train', 'lockstep', 'balancer', None)
    # The model path is relative to the folder holding the package, as MODEL_PATH says.
    assert (ROOT / sim['model']).resolve() == Path(MODEL_PATH)
    assert sim['frame_skip'] == FRAME_SKIP
    simulation = Simulation(MODEL_PATH, seed=0, frame_skip=sim['frame_skip'])
    assert simulation.control_dt == task.control_dt
    topics = SimSensors(simulation.model).topics
    assert all(topics.get(source.name) == source.kind for source in task.sources)
    simulation.close()
    # No preset for a task without an env id: the file carries valid hyper-parameters.
    learner = {name: value for name, value in agent.items()
               if name in DDPGConfig.__dataclass_fields__}
    assert DDPGConfig(**learner).hidden_sizes == (64, 64)
    assert {'actor_lr', 'critic_lr', 'batch_size', 'learning_starts'} <= set(learner)
