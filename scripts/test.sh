#!/usr/bin/env bash
# Set up (if needed) and run every test: the core, the CLIs, and the ROS 2 nodes over DDS on
# loopback on the Jazzy rclpy wheels, then the tests of what can differ between distros
# (pytest -m distro) on Kilted's.
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --quick    the edit-test loop: every ROS-free test but the learning
#                                   runs, and one smoke test per node; Jazzy only
# Other arguments go to pytest (-k NAME, -x, --durations=30, a test file).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
pytest_args=()
for arg in "$@"; do
  if [ "$arg" = --quick ]; then quick=1; else pytest_args+=("$arg"); fi
done

# DDS stays on this machine, in a domain of its own (test fixtures pick one per test too).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $$ % 90 + 1 ))}
export MPLBACKEND=Agg

bash scripts/setup.sh
if [ "$quick" = 1 ]; then
  echo '[test] quick tier: ROS-free tests but the learning runs, and one smoke test per node'
  exec .venv/bin/python -m pytest -m '(not ros and not learning) or smoke' "${pytest_args[@]}"
fi
.venv/bin/python -m pytest "${pytest_args[@]}"

if [ "${SKIP_KILTED:-0}" != 1 ]; then
  ROS_WHEELS=kilted VENV=.venv-kilted bash scripts/setup.sh
  echo '[test] what can differ between distros, on the Kilted rclpy wheels (pytest.ini: distro)'
  .venv-kilted/bin/python -m pytest -m distro "${pytest_args[@]}"
fi
