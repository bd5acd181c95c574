#!/usr/bin/env bash
# Runs a command with the ROS 2 environment this package expects from a pip-installed venv:
# the venv on the ament index path, discovery kept on this machine, and the Fast DDS profile with
# a shared-memory segment large enough for 640x480 images at 30 Hz (config/fastdds_shm.xml).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VIRTUAL_ENV:-$here/.venv}
export AMENT_PREFIX_PATH=$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}" ] && [ -f "$here/config/fastdds_shm.xml" ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE=$here/config/fastdds_shm.xml
fi
exec "$@"
