#!/usr/bin/env bash
# The GPU checks of the README with this checkout's sources; installs nothing. First the Gatys path
# (benchmarks/gpu_check.py, given this script's arguments), then fast mode (benchmarks/gpu_fast.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONPATH="$here/../src:${PYTHONPATH:-}"
"${PYTHON:-python3}" "$here/gpu_check.py" "$@"
"${PYTHON:-python3}" "$here/gpu_fast.py" --json "${FAST_JSON:-gpu-fast.json}"
