#!/usr/bin/env bash
# The GPU check of the README (benchmarks/gpu_check.py) with this checkout's sources; installs nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$here/../src:${PYTHONPATH:-}"
exec "${PYTHON:-python3}" "$here/gpu_check.py" "$@"
