"""Stable-Baselines3 PPO, through `ploutos.sb3.Sb3VecEnv`, learns the planted signal of
tests/ppo_learning.rs and beats buy-and-hold on held-out bars; MaskablePPO runs on the same
adapter.

The market (conftest.signal_market) and the env settings are those of the Rust learning
test; so are PPO's: a 32-32 network, 16 envs × 64 steps, batch 256, 4 epochs, lr 1e-3,
γ 0.9, λ 0.9, entropy 0.01, ~25k steps. Held-out: 32 episodes of 100 bars after bar 2000,
deterministic policy, mean episode return.
"""

import numpy as np
import pytest
import torch

import ploutos
from conftest import DEFAULT, SIGNAL_ENV, signal_market

sb3 = pytest.importorskip("stable_baselines3")
from ploutos.sb3 import Sb3VecEnv  # noqa: E402

TRAIN_LAST = 2000
N_BARS = 3000
EVAL_ENVS = 32


def held_out_return(market, act):
    """Mean return of each held-out env's first episode (all 100 bars, ending together)."""
    env = ploutos.make_vec(DEFAULT, num_envs=EVAL_ENVS, overrides=SIGNAL_ENV, market=market,
                           bounds=(TRAIN_LAST, N_BARS - 1), threads=1, seed=99)
    obs, _ = env.reset()
    returns = np.full(EVAL_ENVS, np.nan)
    for _ in range(200):
        obs, _, term, trunc, infos = env.step(act(obs))
        done = (term | trunc) & np.isnan(returns)
        returns[done] = infos["episode_return"][done]
        if not np.isnan(returns).any():
            return float(returns.mean())
    raise AssertionError("episodes did not end")


def train(market, algo=None, timesteps=24_576):
    torch.set_num_threads(1)
    env = Sb3VecEnv(ploutos.make_vec(DEFAULT, num_envs=16, overrides=SIGNAL_ENV, market=market,
                                     bounds=(0, TRAIN_LAST), threads=1, seed=1))
    algo = algo or sb3.PPO
    model = algo("MlpPolicy", env, n_steps=64, batch_size=256, n_epochs=4, learning_rate=1e-3,
                 gamma=0.9, gae_lambda=0.9, ent_coef=0.01, seed=1, device="cpu", verbose=0,
                 policy_kwargs=dict(net_arch=[32, 32]))
    model.learn(timesteps)
    return model


def learned_and_buy_and_hold(shuffle):
    market = signal_market(5, shuffle=shuffle)
    model = train(market)
    learned = held_out_return(market, lambda obs: model.predict(obs, deterministic=True)[0])
    buy_and_hold = held_out_return(market, lambda obs: np.ones((EVAL_ENVS, 1), np.uint8))
    print(f"shuffle={shuffle}: held-out mean episode return: learned {learned:+.4f}, buy-and-hold {buy_and_hold:+.4f}")
    return learned, buy_and_hold


def test_sb3_ppo_learns_the_planted_signal():
    learned, bh = learned_and_buy_and_hold(shuffle=False)
    # An uninformed trader can always match the better of buy-and-hold and cash.
    assert learned > max(bh, 0.0) + 0.10, f"learned {learned:+.4f} does not beat max(buy-and-hold {bh:+.4f}, cash 0) by 10 points"


def test_sb3_ppo_learns_nothing_from_shuffled_features():
    learned, bh = learned_and_buy_and_hold(shuffle=True)
    assert learned < max(bh, 0.0) + 0.05, f"control: learned {learned:+.4f} beats max(buy-and-hold {bh:+.4f}, cash 0)"


def test_maskable_ppo_runs_on_the_adapter():
    contrib = pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks

    market = signal_market(5, shuffle=False)
    model = train(market, algo=contrib.MaskablePPO, timesteps=2048)
    env = model.get_env()
    obs = env.reset()
    masks = get_action_masks(env)
    assert masks.shape == (16, 3)
    assert masks[:, 0].all() and not masks[:, 2].any()  # flat at the start: nothing to sell
    actions, _ = model.predict(obs, action_masks=masks, deterministic=True)
    assert actions.shape == (16, 1)
