"""sb3-contrib's MaskablePPO on Ploutos' env: the env's action masks keep it from sampling
orders the market rules would refuse.

    python python/examples/sb3_maskable_ppo.py --config config/default.ron --envs 64

MaskablePPO asks the env for `action_masks()`; `ploutos.sb3.Sb3VecEnv` answers with the
env's own masks (`[num_envs, n_tickers * 3]`, hold/buy/sell per ticker, in the layout
MaskablePPO expects for a MultiDiscrete space), which the Rust env writes at every step
(`StepBuffers::action_masks`; all true unless a plugin masks actions). The same masks are
in `infos["action_mask"]` of `make_vec`.
"""

import argparse

import torch
from sb3_contrib import MaskablePPO

import ploutos
from ploutos.sb3 import Sb3VecEnv


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/default.ron")
    ap.add_argument("--envs", type=int, default=64)
    ap.add_argument("--timesteps", type=int, default=200_000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    torch.set_num_threads(1)

    vec = ploutos.make_vec(a.config, num_envs=a.envs, overrides=a.set)
    print(f"env masks actions: {vec.masking}")
    model = MaskablePPO("MlpPolicy", Sb3VecEnv(vec), n_steps=256, batch_size=1024, n_epochs=4,
                        learning_rate=1e-3, gamma=0.99, ent_coef=0.01, verbose=1, device="cpu")
    model.learn(a.timesteps)
    refused = vec.step(model.predict(vec.reset()[0], action_masks=vec.action_masks().reshape(a.envs, -1).copy(),
                                     deterministic=True)[0])[4]["refused"]
    print(f"orders refused in one greedy step: {int(refused.sum())}")


if __name__ == "__main__":
    main()
