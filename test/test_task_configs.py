"""Parameter files of the tasks that read more than joint states."""

from pathlib import Path
from typing import Any

import yaml

from ddpg_ros.config import DDPGConfig
from ddpg_ros.presets import preset_for
from ddpg_ros.sim import Simulation
from ddpg_ros.sim_sensors import SimSensors
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
