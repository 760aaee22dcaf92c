#!/usr/bin/env bash
# Set up (if needed) and run every test: the core, the CLIs, and the ROS 2 nodes over DDS on
# loopback on the Jazzy rclpy wheels, then the tests of what can differ between distros
# (pytest -m distro) on Kilted's.
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --quick    the edit-test loop: every ROS-free test but the learning
#                                   runs, and one smoke test per node; Jazzy only
# The full run lists its 30 slowest tests (--durations=30). Other arguments go to pytest
# (-k NAME, -x, a test file).
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

kilted=0
if [ "${SKIP_KILTED:-0}" != 1 ]; then
  # Kilted's venv is built while the Jazzy tests run, on CPU time they leave idle: a session
  # of its own (so an autogroup of its own, at nice 19, where the kernel groups sessions).
  kilted=1
  kilted_log=$(mktemp)
  setsid bash -c 'echo 19 2>/dev/null > /proc/self/autogroup
                  exec nice -n 19 env ROS_WHEELS=kilted VENV=.venv-kilted bash scripts/setup.sh' \
    > "$kilted_log" 2>&1 &
  kilted_setup=$!
  # If the Jazzy run fails or is interrupted, end the setup by its process group; it has not
  # written its stamp, so the next run sets up again.
  trap 'kill -- -"$kilted_setup" 2>/dev/null || true; rm -f "$kilted_log"' EXIT
fi
.venv/bin/python -m pytest --durations=30 "${pytest_args[@]}"

if [ "$kilted" = 1 ]; then
  setup_status=0
  wait "$kilted_setup" || setup_status=$?
  trap 'rm -f "$kilted_log"' EXIT
  cat "$kilted_log"
  [ "$setup_status" = 0 ] || { echo "[test] Kilted setup failed ($setup_status)"; exit 1; }
  echo '[test] what can differ between distros, on the Kilted rclpy wheels (pytest.ini: distro)'
  .venv-kilted/bin/python -m pytest -m distro --durations=15 "${pytest_args[@]}"
fi
