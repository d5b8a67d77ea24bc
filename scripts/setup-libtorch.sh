#!/usr/bin/env bash
# Installs libtorch for tch 0.24 into a project-local virtualenv (.venv/), from the
# torch==2.11.0 wheel on PyPI, and links it at .venv/libtorch where .cargo/config.toml
# points LIBTORCH; also numpy (benchmark baselines) and ray (`ploutos sweep --backend ray`).
# Idempotent: does nothing when the right versions are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="2.11.0"
# Ray runs `ploutos sweep --backend ray` (and its test in `make test`, on a local head node).
RAY_VERSION="2.60.0"
VENV=".venv"
LINK="$VENV/libtorch"

die() { echo "ploutos setup: $*" >&2; exit 1; }

installed_version() {
    [ -f "$LINK/version.py" ] || return 1
    sed -n "s/^__version__ = '\([^'+]*\).*'/\1/p" "$LINK/version.py"
}

ensure_numpy() {
    # numpy runs the NumPy baseline of `ploutos bench` (shared/bench/numpy_env.py).
    "$VENV/bin/python" -c 'import numpy' 2>/dev/null \
        || "$VENV/bin/python" -m pip install --disable-pip-version-check -q numpy \
        || echo "ploutos setup: numpy could not be installed; benchmarks will skip the NumPy baseline" >&2
}

ensure_ray() {
    [ "$("$VENV/bin/python" -c 'import ray; print(ray.__version__)' 2>/dev/null)" = "$RAY_VERSION" ] && return 0
    echo "ploutos setup: installing ray==$RAY_VERSION into $VENV for sweeps on Ray (first time only)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q "ray==$RAY_VERSION" \
        || echo "ploutos setup: ray==$RAY_VERSION could not be installed; sweeps can still run locally (--backend local)" >&2
}

# CUDA's compiler-runtime headers (`crt/`, 134 KB), which the wheel's nvidia-cuda-runtime
# lacks: build.rs needs them to compile CUDA graphs into csrc/torch_shim.cpp. Without
# them the build still works, and rollouts on a GPU launch their kernels one by one.
CUDA_CRT_VERSION="13.0.88"
ensure_cuda_headers() {
    [ -f "$LINK/../nvidia/cu13/include/crt/host_config.h" ] && return 0
    [ -d "$LINK/../nvidia/cu13/include" ] || return 0
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps "nvidia-cuda-crt==$CUDA_CRT_VERSION" \
        || echo "ploutos setup: nvidia-cuda-crt could not be installed; GPU rollouts will not use CUDA graphs" >&2
}

if [ "$(installed_version 2>/dev/null || true)" = "$TORCH_VERSION" ] && [ -f "$LINK/lib/libtorch_cpu.so" ]; then
    ensure_cuda_headers
    ensure_numpy
    ensure_ray
    exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 \
    || die "python3 not found; install Python 3.9+ with venv and pip (Debian: apt-get install python3 python3-venv python3-pip), then re-run make."
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' \
    || die "$("$PYTHON" --version 2>&1) is too old: torch $TORCH_VERSION needs Python 3.9+."

if [ ! -x "$VENV/bin/python" ]; then
    echo "ploutos setup: creating virtualenv $VENV (first time only)"
    "$PYTHON" -m venv "$VENV" \
        || die "could not create $VENV; install the venv module (Debian: apt-get install python3-venv) and re-run make."
fi

echo "ploutos setup: installing torch==$TORCH_VERSION into $VENV for libtorch (first time only, ~5 GB, a few minutes)"
"$VENV/bin/python" -m pip install --disable-pip-version-check -q "torch==$TORCH_VERSION" \
    || die "pip could not install torch==$TORCH_VERSION; check access to the Python package index, or set LIBTORCH to a libtorch $TORCH_VERSION folder."

site=$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torch").origin))') \
    || die "torch installed but cannot be imported from $VENV; delete $VENV and re-run make."
ln -sfn "$site" "$LINK"

got=$(installed_version || true)
[ "$got" = "$TORCH_VERSION" ] \
    || die "found torch '$got' in $VENV but tch 0.24 needs $TORCH_VERSION; delete $VENV and re-run make."
ensure_cuda_headers
ensure_numpy
ensure_ray
echo "ploutos setup: libtorch $TORCH_VERSION ready at $LINK"
