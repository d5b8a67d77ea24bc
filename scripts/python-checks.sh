#!/usr/bin/env bash
# Checks that need Python tools (TensorBoard's own reader, ...), run by `make test` after
# the Rust tests. Each check installs what it needs into the project's .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
for check in scripts/checks/*.sh; do
    [ -e "$check" ] || continue
    echo "python check: $check"
    bash "$check"
done
