#!/usr/bin/env bash
# Set up (if needed), then launch the MuJoCo simulator and the DDPG learner together over
# ROS 2 and watch the episode return climb. Extra arguments are launch arguments:
#   bash scripts/train_demo.sh task:=half_cheetah seed:=1
set -euo pipefail
cd "$(dirname "$0")/.."
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-17}
bash scripts/setup.sh
exec .venv/bin/ddpg-launch train_sim task:=inverted_pendulum "$@"
