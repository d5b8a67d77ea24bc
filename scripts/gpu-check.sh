#!/usr/bin/env bash
# GPU check, run on a CUDA machine that has torch 2.11.0 in `python3` (no build there):
#   strip -o target/gpu/ploutos target/release/ploutos   # here, after `make build`
#   bash scripts/gpu-check.sh                              # there, with target/gpu/ploutos carried
# Optional: PLOUTOS_BASELINE_BIN=target/gpu/ploutos-base (an earlier build, measured in the
# same invocation for a before/after), OUT=dir (the benches' full output), SEED_ONLY=1
# (skip the 1,024-env rows), QUICK=1 (also make train's quick run, about 3 minutes).
# Models go to models/ in the current folder.
# Measures PPO throughput with the seed's network (medians of 3 runs per row), and the same
# build without CUDA graphs (PLOUTOS_CUDA_GRAPHS=0); profiles an iteration phase by phase;
# trains config/ultimate.ron briefly; compares one update on the CPU and the GPU; runs
# tests/ppo_learning.rs on the GPU when its release test binary is carried as
# target/gpu/ppo_learning (`cargo test --release --test ppo_learning --no-run`, then strip
# it there), and the library's CUDA-only tests when its test binary is carried as
# target/gpu/ploutos-lib (`cargo test --release --lib --no-run`, stripped); lists any
# graph fallback; and (QUICK=1) runs make train's quick run.
# Exit status: 1 when a test binary failed (its full output is in $O), else 0.
set -u
TL=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH=$TL
B=${PLOUTOS_BIN:-./target/gpu/ploutos}
BASE=${PLOUTOS_BASELINE_BIN:-}
O=${OUT:-/tmp/gpu-check}
mkdir -p "$O"
# An empty folder as --baseline: no Python baseline runs beside the GPU benches.
NOBASE="$O/no-baseline"
mkdir -p "$NOBASE"
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
SEED="--net 1024,512,256 --envs 16 --n-steps 4096 --batch 8192 --epochs 20"
WIDE="--net 1024,512,256 --envs 1024 --n-steps 256 --batch 8192 --epochs 20"
FAILED=""
# Runs a test binary into $O/<label>.txt, shows the lines matching <pattern>, and notes a
# failure (the exit status at the end) instead of losing it in a pipe.
tests() { # label pattern command...
    local label=$1 pattern=$2; shift 2
    "$@" > "$O/$label.txt" 2>&1
    local rc=$?
    grep -E "$pattern" "$O/$label.txt"
    [ $rc -eq 0 ] || { echo "!! $label failed (exit $rc): $O/$label.txt"; FAILED="$FAILED $label"; }
}
bench() { # label binary precision shape [extra]
    local label=$1 bin=$2 p=$3 shape=$4; shift 4
    timeout 150 $bin bench --train $shape --repeat 3 --set training.device=cuda --set training.precision=$p \
        --baseline "$NOBASE" "$@" > "$O/bench-$label.txt" 2>&1
    echo "== $label: $(grep -m1 'ploutos PPO' "$O/bench-$label.txt" || tail -1 "$O/bench-$label.txt")"
    grep -A20 '^profile' "$O/bench-$label.txt"
}
bench seed-tf32 "$B" tf32 "$SEED" --profile
[ -n "$BASE" ] && bench base-seed-fp32 "$BASE" fp32 "$SEED"
bench seed-fp32 "$B" fp32 "$SEED"
# The same build without CUDA graphs (rollouts and update launch kernel by kernel).
PLOUTOS_CUDA_GRAPHS=0 bench seed-fp32-nographs "$B" fp32 "$SEED"
# The env step of 16 envs took 31 µs there with 16 threads (5 µs on a 2-core CPU): one thread?
bench seed-fp32-1thread "$B" fp32 "$SEED" --set training.threads=1
echo "== one update on the CPU and on the GPU from the same seed (64-64 net, 16 envs x 256 steps, 10 epochs)"
for d in cpu:fp32 cuda:fp32 cuda:tf32; do
    dev=${d%%:*}; p=${d##*:}
    timeout 60 $B train --config config/default.ron --set training.device=$dev --set training.precision=$p \
        --set training.n_envs=16 --set training.total_timesteps=4096 --set training.eval_freq=1000000 \
        --set "training.run_name=Some(\"cmp-$dev-$p\")" > "$O/cmp-$dev-$p.txt" 2>&1 \
        || { echo "cmp $d failed:"; tail -3 "$O/cmp-$dev-$p.txt"; }
done
python3 - models <<'PY'
import sys, torch
from safetensors.torch import load_file
root = sys.argv[1]
ref = load_file(f"{root}/cmp-cpu-fp32/final/model.safetensors")
for other in ["cmp-cuda-fp32", "cmp-cuda-tf32"]:
    try:
        got = load_file(f"{root}/{other}/final/model.safetensors")
    except Exception as e:
        print(other, "missing:", e); continue
    worst = max(((got[k].double() - ref[k].double()).norm() / ref[k].double().norm()).item() for k in ref)
    print(f"{other} vs cmp-cpu-fp32 after one update: worst relative weight difference over tensors {worst:.2e}")
PY
if [ -x target/gpu/ploutos-lib ]; then
    echo "== the update graph against the eager update on the GPU (the library's CUDA-only tests)"
    tests lib-on-cuda "^test |test result|panicked|assert" timeout 120 target/gpu/ploutos-lib --ignored on_cuda
fi
T=$(ls target/gpu/ppo_learning* 2>/dev/null | head -1)
if [ -n "$T" ]; then
    echo "== tests/ppo_learning.rs on the GPU (planted signal and shuffled control; bf16)"
    PLOUTOS_TEST_DEVICE=cuda tests ppo-learning-bf16 "shuffle=|test result|panicked" timeout 120 $T --nocapture
    echo "== the same with tf32"
    PLOUTOS_TEST_DEVICE=cuda PLOUTOS_TEST_PRECISION=tf32 tests ppo-learning-tf32 "shuffle=|test result|panicked" \
        timeout 120 $T --nocapture ppo_learns
fi
echo "== config/ultimate.ron (the seed's config, precision auto), 1,048,576 timesteps"
timeout 90 $B train --config config/ultimate.ron --set training.total_timesteps=1048576 \
    --set 'training.run_name=Some("gpu")' --set training.eval_freq=524288 > "$O/ultimate.txt" 2>&1
tail -4 "$O/ultimate.txt"
if [ "${SEED_ONLY:-0}" != 1 ]; then
    [ -n "$BASE" ] && bench base-wide-fp32 "$BASE" fp32 "$WIDE"
    bench wide-fp32 "$B" fp32 "$WIDE"
    PLOUTOS_CUDA_GRAPHS=0 bench wide-fp32-nographs "$B" fp32 "$WIDE"
    bench wide-tf32 "$B" tf32 "$WIDE" --profile
fi
echo "== graph fallbacks (none expected):"
grep -h "CUDA graphs are off" "$O"/*.txt | sort | uniq -c
finish() {
    [ -z "$FAILED" ] && exit 0
    echo "!! failed:$FAILED"
    exit 1
}
[ "${QUICK:-0}" = 1 ] || finish
echo "== config/default.ron, make train's quick run (6M timesteps), precision auto"
timeout 240 $B train --config config/default.ron --set 'training.run_name=Some("gpu-quick")' 2>&1 \
    | grep -E "^eval @|done after" | sed -n '1p;10p;$p'
finish
