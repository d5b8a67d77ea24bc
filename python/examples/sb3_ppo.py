"""Stable-Baselines3 PPO on Ploutos' env through the thin `VecEnv` adapter `ploutos.sb3.Sb3VecEnv`.

    python python/examples/sb3_ppo.py --config config/default.ron --envs 64 --timesteps 200000

The env is `ploutos train`'s training env (same config, data, feature standardization and
seed); SB3 does the learning. Afterwards, the deterministic policy is scored on the
validation split.
"""

import argparse

import numpy as np
import torch
from stable_baselines3 import PPO

import ploutos
from ploutos.sb3 import Sb3VecEnv


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/default.ron")
    ap.add_argument("--envs", type=int, default=64)
    ap.add_argument("--timesteps", type=int, default=200_000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as `ploutos train --set`")
    a = ap.parse_args()
    torch.set_num_threads(1)

    env = Sb3VecEnv(ploutos.make_vec(a.config, num_envs=a.envs, overrides=a.set))
    model = PPO("MlpPolicy", env, n_steps=256, batch_size=1024, n_epochs=4, learning_rate=1e-3,
                gamma=0.99, gae_lambda=0.95, ent_coef=0.01, verbose=1, device="cpu",
                policy_kwargs=dict(net_arch=[64, 64], activation_fn=torch.nn.Tanh))
    model.learn(a.timesteps)

    val = ploutos.make_vec(a.config, num_envs=32, overrides=a.set, split="validation", seed=7)
    obs, _ = val.reset()
    returns = np.full(val.num_envs, np.nan)
    while np.isnan(returns).any():
        obs, _, term, trunc, infos = val.step(model.predict(obs, deterministic=True)[0])
        done = (term | trunc) & np.isnan(returns)
        returns[done] = infos["episode_return"][done]
    print(f"validation: mean episode return {100 * returns.mean():+.2f}% over {val.num_envs} episodes")


if __name__ == "__main__":
    main()
