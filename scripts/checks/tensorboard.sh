#!/usr/bin/env bash
# Checks our hand-written TensorBoard event files with TensorBoard's own reader: writes one
# with examples/write_tensorboard.rs, then loads it with EventAccumulator
# (scripts/checks/read_tensorboard.py). Installs tensorboard into .venv if it is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "tensorboard check: $PY not found; run 'make setup' first." >&2
    exit 1
fi
if ! "$PY" -c "import tensorboard" 2>/dev/null; then
    echo "tensorboard check: installing tensorboard into .venv"
    "$PY" -m pip install -q tensorboard
fi

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cargo run --quiet --no-default-features --example write_tensorboard -- "$dir/run" "$dir/resumed" >/dev/null
# TensorBoard warns on stderr that TensorFlow is absent; it reads event files without it.
TF_CPP_MIN_LOG_LEVEL=3 "$PY" scripts/checks/read_tensorboard.py "$dir/run" "$dir/resumed"
