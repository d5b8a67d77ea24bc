"""`python -m ploutos.bench`: what the Python interface costs, and what it buys SB3 users.

1. Stepping: `make_vec` at `--envs` envs × 10 tickers (the built-in market and account,
   `--layout index` by default), stepped from Python through `PloutosVectorEnv.step` with
   fixed random actions (infos included), against the plain env (without the package's
   per-step costs and refusals, as `ploutos bench` times it) stepped by a Rust loop inside
   the native module (`Core.bench_steps`), interleaved in one process: env-steps per
   second, medians of `--repeat` runs, and their ratio.
2. `--sb3`: Stable-Baselines3 PPO through `ploutos.sb3.Sb3VecEnv` against SB3 PPO on the
   NumPy env of `../shared/bench/numpy_env.py` (via `sb3_ppo.py`'s VecEnv), same
   hyper-parameters as `sb3_ppo.py` (64-64, 16 envs × 256 steps, batch 1024, 10 epochs,
   1 torch thread), timesteps per second over whole iterations after a warm-up one,
   interleaved, medians.

Build the module in release mode first (`maturin develop --release`); debug builds step
several times slower, on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import ploutos
from ploutos._env import _core


def stepping(n_envs: int, layout: str, steps: int, repeat: int, threads: int | None) -> dict:
    overrides = {"environment.observation_layout": layout}
    # Without action masks, as `ploutos bench`.
    env = ploutos.make_vec(ploutos.BUILTIN, num_envs=n_envs, threads=threads, overrides=overrides, action_masks=False)
    # The same env without this package's per-step costs and refusals: what `ploutos bench` times.
    core = _core(ploutos.BUILTIN, overrides, n_envs, "train", None, threads, True, None, None, plain=True,
                 action_masks=False)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.n_actions, size=(n_envs, env.n_tickers), dtype=np.uint8)
    env.reset(seed=0)
    core.reset(0)
    core.bench_steps(actions, 20)  # warm-up
    for _ in range(20):
        env.step(actions)
    py_rates, rust_rates = [], []
    for _ in range(repeat):
        secs = core.bench_steps(actions, steps)
        rust_rates.append(n_envs * steps / secs)
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        py_rates.append(n_envs * steps / (time.perf_counter() - t0))
    py, rust = statistics.median(py_rates), statistics.median(rust_rates)
    return dict(n_envs=n_envs, n_tickers=env.n_tickers, layout=layout, threads=core.threads, steps=steps,
                python_env_steps_per_sec=py, rust_env_steps_per_sec=rust, ratio=py / rust,
                ratio_runs=[p / r for p, r in zip(py_rates, rust_rates)],
                python_runs=py_rates, rust_runs=rust_rates)


def sb3_rate(vec, args) -> float:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class Clock(BaseCallback):
        def __init__(self):
            super().__init__()
            self.marks = []

        def _on_rollout_start(self):
            self.marks.append((time.perf_counter(), self.num_timesteps))

        def _on_step(self):
            return True

    net = [int(x) for x in args.net.split(",")]
    model = PPO("MlpPolicy", vec, n_steps=args.n_steps, batch_size=args.batch, n_epochs=args.epochs,
                learning_rate=5e-5, gamma=0.995, gae_lambda=0.98, clip_range=0.2, ent_coef=0.01,
                target_kl=None, device="cpu", verbose=0, seed=0,
                policy_kwargs=dict(net_arch=dict(pi=net, vf=net), activation_fn=torch.nn.Tanh))
    clock = Clock()
    per_iter = args.sb3_envs * args.n_steps
    model.learn(total_timesteps=per_iter * (args.iterations + 1) + 1, callback=clock)
    (t0, s0), (t1, s1) = clock.marks[1], clock.marks[-1]
    return (s1 - s0) / (t1 - t0)


def sb3(args) -> dict:
    import torch

    from .sb3 import Sb3VecEnv

    torch.set_num_threads(1)
    sys.path.insert(0, os.path.abspath(args.baseline))
    try:
        from sb3_ppo import make_vec_env as numpy_vec_env  # the baseline's own VecEnv
    except ImportError:
        numpy_vec_env = None
    ours, theirs, reruns = [], [], 0
    for _ in range(args.repeat_sb3):
        env = ploutos.make_vec(ploutos.BUILTIN, num_envs=args.sb3_envs, threads=1, action_masks=False)
        ours.append(sb3_rate(Sb3VecEnv(env), args))
        for attempt in range(3 if numpy_vec_env is not None else 0):
            try:
                theirs.append(sb3_rate(numpy_vec_env(args.sb3_envs, 10), args))
                break
            except ValueError as e:
                # The NumPy env now and then hands SB3 a NaN observation (torch refuses
                # NaN logits): that run is lost, run it again.
                reruns += 1
                print(f"ploutos.bench: NumPy baseline run failed ({str(e).splitlines()[0][:80]}...); rerunning",
                      file=sys.stderr)
    out = dict(net=args.net, n_envs=args.sb3_envs, n_steps=args.n_steps, batch=args.batch, epochs=args.epochs,
               ploutos_timesteps_per_sec=statistics.median(ours), ploutos_runs=ours,
               numpy_timesteps_per_sec=statistics.median(theirs) if theirs else None, numpy_runs=theirs,
               numpy_reruns=reruns)
    if theirs:
        out["ratio"] = out["ploutos_timesteps_per_sec"] / out["numpy_timesteps_per_sec"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ploutos.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, default=4096)
    ap.add_argument("--layout", choices=["index", "materialized"], default="index")
    ap.add_argument("--steps", type=int, default=200, help="steps per timed run")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each side")
    ap.add_argument("--threads", type=int, default=None, help="env threads (default: all cores)")
    ap.add_argument("--sb3", action="store_true", help="also SB3 PPO on Ploutos vs on the NumPy env")
    ap.add_argument("--baseline", default=os.path.join("..", "shared", "bench"),
                    help="folder of numpy_env.py and sb3_ppo.py (default: ../shared/bench)")
    ap.add_argument("--repeat-sb3", type=int, default=3)
    ap.add_argument("--sb3-envs", type=int, default=16)
    ap.add_argument("--net", default="64,64")
    ap.add_argument("--n-steps", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    for name in ("envs", "steps", "repeat", "repeat_sb3", "sb3_envs"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")

    s = stepping(a.envs, a.layout, a.steps, a.repeat, a.threads)
    result = {"stepping": s}
    if not a.json:
        print(f"stepping {s['n_envs']} envs × {s['n_tickers']} tickers, {s['layout']} layout, "
              f"{s['threads']} thread(s), median of {a.repeat} runs of {a.steps} steps:")
        print(f"  from Python (make_vec().step): {s['python_env_steps_per_sec']:,.0f} env-steps/s")
        print(f"  Rust loop (same env, same run): {s['rust_env_steps_per_sec']:,.0f} env-steps/s")
        print(f"  Python / Rust: {100 * s['ratio']:.1f}% "
              f"(runs: {', '.join(f'{100 * r:.0f}%' for r in s['ratio_runs'])})")
    if a.sb3:
        b = sb3(a)
        result["sb3"] = b
        if not a.json:
            print(f"SB3 PPO, net {b['net']}, {b['n_envs']} envs × {b['n_steps']} steps, batch {b['batch']}, "
                  f"{b['epochs']} epochs, median of {a.repeat_sb3} interleaved runs:")
            print(f"  on Ploutos (ploutos.sb3.Sb3VecEnv): {b['ploutos_timesteps_per_sec']:,.0f} timesteps/s")
            if b["numpy_timesteps_per_sec"] is None:
                print(f"  on the NumPy env: not run ({a.baseline}/sb3_ppo.py not found)")
            else:
                print(f"  on the NumPy env ({a.baseline}): {b['numpy_timesteps_per_sec']:,.0f} timesteps/s"
                      f"  → ratio {b['ratio']:.2f}x")
    if a.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
