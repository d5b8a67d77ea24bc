#!/usr/bin/env bash
# The Python package (pyproject.toml, python/): builds it into .venv with maturin and runs
# its pytest suite (Gymnasium's env checker, the vector API contract, parity with the
# training envs of `ploutos train`, CLI-identical errors, SB3 PPO learning the planted
# signal). Installs the pinned Python tools into .venv first when they are missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    echo "python package check: $PY not found; run 'make setup' first." >&2
    exit 1
fi
# The versions the package is tested with (pyproject.toml's `test` extra and build system).
PINS=(maturin==1.16.0 gymnasium==1.4.0 stable-baselines3==2.9.2 sb3-contrib==2.9.2 pytest==9.2.0)
if ! "$PY" - "${PINS[@]}" <<'PYEOF'
import sys
from importlib.metadata import PackageNotFoundError, version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    try:
        if version(name) != want:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PYEOF
then
    echo "python package check: installing ${PINS[*]} into .venv"
    "$PY" -m pip install --disable-pip-version-check -q "${PINS[@]}"
fi

# The same target folder as the Rust build (most of the simulation's dependencies are
# already built there).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# (its stdout is pip's progress; build errors go to stderr)
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --quiet >/dev/null
# torch's default of 2 intra-op threads spin-waits on a loaded 2-core machine.
OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" "$PY" -m pytest -q python/tests
