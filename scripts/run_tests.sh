#!/usr/bin/env bash
# The test command: the ROS linters (as pytest tests in test/test_lint.py) and every test.
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -k geometry`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
exec bash scripts/ros_env.sh .venv/bin/python -m pytest -q -ra --durations=15 "$@"
