#!/usr/bin/env bash
# GPU check, run on a CUDA machine that has torch 2.11.0 in `python3` (no build there):
#   strip -o target/gpu/ploutos target/release/ploutos   # here, after `make build`
#   bash scripts/gpu-check.sh                              # there, with target/gpu/ploutos carried
# Measures PPO throughput with the seed's network, trains config/ultimate.ron briefly and
# runs make train's quick run (config/default.ron) on the GPU.
set -u
TL=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH=$TL
B=${PLOUTOS_BIN:-./target/gpu/ploutos}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for p in fp32 bf16; do
    echo "== $p seed net 1024-512-256: 16 envs x 4096 steps, batch 8192, 20 epochs (the seed's config)"
    timeout 100 $B bench --train --net 1024,512,256 --envs 16 --n-steps 4096 --batch 8192 --epochs 20 --json --set training.device=cuda --set training.precision=$p --baseline /nonexistent 2>&1 | tail -2
    echo "== $p seed net: 1024 envs x 256 steps, batch 8192, 20 epochs"
    timeout 60 $B bench --train --net 1024,512,256 --envs 1024 --n-steps 256 --batch 8192 --epochs 20 --json --set training.device=cuda --set training.precision=$p --baseline /nonexistent 2>&1 | tail -2
done
echo "== 64-64: 16 envs x 256 steps, batch 1024, 10 epochs"
timeout 30 $B bench --train --net 64,64 --envs 16 --n-steps 256 --batch 1024 --epochs 10 --json --set training.device=cuda --baseline /nonexistent 2>&1 | tail -2
echo "== config/ultimate.ron, 262,144 timesteps"
timeout 60 $B train --config config/ultimate.ron --set training.total_timesteps=262144 --set training.run_name=gpu --set training.eval_freq=131072 2>&1 | tail -8
echo "== config/default.ron, make train's quick run (6M timesteps, about 3 minutes on an H200)"
timeout 240 $B train --config config/default.ron --set 'training.run_name=Some("gpu-quick")' 2>&1 | grep -E "^eval @|done after" | sed -n '1p;10p;$p'
