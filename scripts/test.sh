#!/usr/bin/env bash
# Set up (if needed) and run every test: the core, the CLIs, and the ROS 2 nodes over DDS on
# loopback, first on the Jazzy rclpy wheels, then the ROS integration tests on Kilted's.
set -euo pipefail
cd "$(dirname "$0")/.."

# DDS stays on this machine, in a domain of its own (test fixtures pick one per test too).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $$ % 90 + 1 ))}
export MPLBACKEND=Agg

bash scripts/setup.sh
.venv/bin/python -m pytest "$@"

if [ "${SKIP_KILTED:-0}" != 1 ]; then
  ROS_WHEELS=kilted VENV=.venv-kilted bash scripts/setup.sh
  # The learning tests train for minutes and call rclpy the way the other ros tests do: once.
  echo '[test] ROS 2 integration tests on the Kilted rclpy wheels (learning runs on Jazzy)'
  .venv-kilted/bin/python -m pytest -m 'ros and not learning' "$@"
fi
