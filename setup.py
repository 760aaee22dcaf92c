from glob import glob

from setuptools import find_packages, setup

package_name = 'ddpg_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks']),
    package_data={package_name: ['models/*.xml', 'core/presets.yaml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools', 'numpy', 'pyyaml'],
    zip_safe=True,
    maintainer='ddpg_ros maintainers',
    maintainer_email='maintainers@ddpg-ros.dev',
    description='Online continuous control with DDPG for ROS 2 robots, with a MuJoCo simulator.',
    license='Apache-2.0',
    python_requires='>=3.10',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'ddpg-train = ddpg_ros.cli.train:main',
            'ddpg-eval = ddpg_ros.cli.evaluate:main',
            'mujoco_sim = ddpg_ros.ros.mujoco_sim_node:main',
            'ddpg_agent = ddpg_ros.ros.ddpg_agent_node:main',
            'ddpg_learner = ddpg_ros.ros.ddpg_learner_node:main',
            'ddpg-launch = ddpg_ros.ros.launcher:main',
            'ddpg-discovery-server = ddpg_ros.fleet.discovery_server:main',
        ],
    },
)
