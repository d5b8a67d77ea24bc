"""`ploutos.make_vec` and `ploutos train` see the same observations for the same seed.

examples/first_observations.rs builds the training envs as `ploutos train` does (same
config loading, data, feature standardization, split, env options, reset with
`training.seed`) and prints its observations, rewards and flags for a few steps of fixed
actions; make_vec must give the same, bit for bit.
"""

import json
import os
import subprocess

import numpy as np

import ploutos
from conftest import DEFAULT, REPO

STEPS = 4
OVERRIDES = {"training.n_envs": 6, "training.seed": 1234, "environment.episode_length": 3}


def action(i, k, t):
    return (i * 7 + k * 3 + t * 5) % 3


def test_make_vec_matches_the_rust_training_envs():
    specs = ploutos.overrides_to_specs(OVERRIDES)
    cmd = ["cargo", "run", "--quiet", "--no-default-features", "--example", "first_observations", "--",
           DEFAULT, str(STEPS), *specs]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=os.environ)
    assert p.returncode == 0, p.stderr
    rust = json.loads(p.stdout)

    env = ploutos.make_vec(DEFAULT, overrides=OVERRIDES)  # num_envs and seed from the config
    n, d = env.num_envs, env.n_tickers
    assert (n, d, env.obs_dim) == (rust["n_envs"], rust["n_tickers"], rust["obs_dim"])
    obs, infos = env.reset()
    np.testing.assert_array_equal(obs, np.asarray(rust["obs"][0], np.float32).reshape(n, -1))
    np.testing.assert_array_equal(infos["action_mask"], np.asarray(rust["masks"][0]).reshape(n, d, 3))
    for t in range(STEPS):
        actions = np.array([[action(i, k, t) for k in range(d)] for i in range(n)], np.uint8)
        obs, rew, term, trunc, infos = env.step(actions)
        np.testing.assert_array_equal(infos["action_mask"], np.asarray(rust["masks"][t + 1]).reshape(n, d, 3))
        np.testing.assert_array_equal(obs, np.asarray(rust["obs"][t + 1], np.float32).reshape(n, -1))
        np.testing.assert_array_equal(rew, np.asarray(rust["rewards"][t], np.float32))
        np.testing.assert_array_equal(term | trunc, np.asarray(rust["done"][t]))
    # The episodes of 3 bars ended and restarted within these steps; masks were on.
    assert any(any(row) for row in rust["done"])
    assert not all(all(row) for row in rust["masks"])
