"""Gymnasium's env checker on `make`, and the vector API contract of `make_vec`."""

import threading

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import ploutos
from conftest import DEFAULT, SMALL


def test_env_checker_passes_on_make():
    env = ploutos.make(DEFAULT, overrides={"environment.episode_length": 20})
    check_env(env, skip_render_check=True)
    # Run episodes to their end through the checker's API.
    obs, info = env.reset(seed=3)
    for _ in range(25):
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        if term or trunc:
            break
    assert trunc and not term
    assert info["episode_steps"] == 20


def test_spaces_shapes_and_dtypes():
    env = ploutos.make_vec(DEFAULT, num_envs=6, overrides=SMALL)
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    n, d = 6, 10
    assert env.num_envs == n
    assert env.single_action_space == gym.spaces.MultiDiscrete([3] * d)
    assert env.action_space.shape == (n, d)
    assert env.single_observation_space.shape == (3 * d + 4 + d * 55,)
    obs, infos = env.reset()
    assert obs.shape == (n, 3 * d + 4 + d * 55) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    obs, rew, term, trunc, infos = env.step(env.action_space.sample())
    assert rew.shape == (n,) and rew.dtype == np.float32
    assert term.dtype == np.bool_ and trunc.dtype == np.bool_ and term.shape == trunc.shape == (n,)
    for key in ("equity", "cash", "step_return", "episode_reward", "episode_return"):
        assert infos[key].shape == (n,) and infos[key].dtype == np.float64, key
    for key in ("executed", "refused", "bar", "episode_steps"):
        assert infos[key].shape == (n,) and infos[key].dtype == np.uint32, key
    assert infos["costs"].shape == (n, 4) and (infos["costs"] >= 0).all()
    assert infos["refusals"].shape == (n, len(env.refusal_names))
    assert (infos["refusals"].sum(axis=1) == infos["refused"]).all()
    assert infos["action_mask"].shape == (n, d, 3) and infos["action_mask"].dtype == np.bool_
    assert env.action_masks().shape == (n, d, 3)
    assert infos["final_obs"].shape == obs.shape and infos["_final_obs"].shape == (n,)
    assert env.observation_columns()[0] == ("portfolio", 0, 3 * d + 4)


def test_views_are_zero_copy_read_only_and_rewritten_by_step():
    env = ploutos.make_vec(DEFAULT, num_envs=4, overrides=SMALL)
    obs0, _ = env.reset(seed=1)
    kept = obs0.copy()
    assert not obs0.flags.writeable and not obs0.flags.owndata
    obs1, rew, *_ = env.step(np.ones((4, 10), np.uint8))
    assert obs1 is obs0 or np.shares_memory(obs0, obs1)
    assert not np.array_equal(kept, obs1)  # rewritten in place
    with pytest.raises(ValueError):
        obs1[0, 0] = 1.0
    copying = ploutos.make_vec(DEFAULT, num_envs=4, overrides=SMALL, copy=True)
    a, _ = copying.reset(seed=1)
    b, *_ = copying.step(np.ones((4, 10), np.uint8))
    assert not np.shares_memory(a, b) and a.flags.writeable


def test_same_step_autoreset_and_final_obs():
    n = 5
    env = ploutos.make_vec(DEFAULT, num_envs=n, overrides={**SMALL, "environment.episode_length": 3})
    env.reset(seed=7)
    hold = np.zeros((n, 10), np.uint8)
    buy = np.ones((n, 10), np.uint8)
    for t in range(3):
        obs, rew, term, trunc, infos = env.step(buy if t == 0 else hold)
    # Every episode ran its 3 bars: truncated, restarted in the same step.
    assert trunc.all() and not term.any()
    assert infos["_final_obs"].all()
    assert (infos["episode_steps"] == 3).all()
    final = infos["final_obs"]
    # The new episode starts all in cash; the finished one held positions.
    np.testing.assert_array_equal(obs[:, 0], 1.0)
    assert (final[:, 0] < 1.0).all()
    assert not np.array_equal(final, obs)
    obs, rew, term, trunc, infos = env.step(hold)
    assert not (term | trunc).any() and not infos["_final_obs"].any()
    assert (infos["episode_steps"] == 1).all()


def trajectory(env, seed, steps=30):
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=seed)
    out = [obs.copy()]
    for _ in range(steps):
        obs, rew, term, trunc, infos = env.step(rng.integers(0, 3, size=(env.num_envs, 10)))
        out += [obs.copy(), rew.copy(), term.copy(), trunc.copy(), infos["equity"].copy()]
    return out


def test_seeding_is_reproducible():
    over = {**SMALL, "environment.episode_length": 10}
    a = ploutos.make_vec(DEFAULT, num_envs=4, overrides=over)
    b = ploutos.make_vec(DEFAULT, num_envs=4, overrides=over)
    ta, tb = trajectory(a, 11), trajectory(b, 11)
    for x, y in zip(ta, tb):
        np.testing.assert_array_equal(x, y)
    # The same env again from the same seed, and a different seed differs.
    for x, y in zip(trajectory(a, 11), ta):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(trajectory(a, 12)[0], ta[0])
    # Without a seed: the make_vec seed (default: the config's training.seed), then a
    # deterministic sequence.
    c = ploutos.make_vec(DEFAULT, num_envs=4, overrides=over)
    d = ploutos.make_vec(DEFAULT, num_envs=4, overrides=over, seed=42)
    np.testing.assert_array_equal(c.reset()[0], a.reset(seed=42)[0])
    np.testing.assert_array_equal(d.reset()[0], a.reset(seed=42)[0])
    np.testing.assert_array_equal(c.reset()[0].copy(), d.reset()[0])


def test_thread_count_does_not_change_results():
    over = {**SMALL, "environment.episode_length": 10}
    one = ploutos.make_vec(DEFAULT, num_envs=8, overrides=over, threads=1)
    two = ploutos.make_vec(DEFAULT, num_envs=8, overrides=over, threads=2)
    for x, y in zip(trajectory(one, 5), trajectory(two, 5)):
        np.testing.assert_array_equal(x, y)


def test_step_releases_the_gil():
    # A Python thread keeps counting while the main thread steps 256 envs.
    env = ploutos.make_vec(DEFAULT, num_envs=256, overrides=SMALL, threads=1)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 3, size=(256, 10)).astype(np.uint8)
    stop, count = threading.Event(), [0]

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    before = count[0]
    for _ in range(200):
        env.step(actions)
    stop.set()
    t.join()
    assert count[0] > before


def test_action_masks_follow_the_env():
    # Built-in masks are on by default (training.action_masking), as in `ploutos train`.
    env = ploutos.make_vec(DEFAULT, num_envs=3, overrides=SMALL)
    assert env.masking
    _, infos = env.reset(seed=0)
    masks = env.action_masks()
    assert masks.shape == (3, 10, 3)
    np.testing.assert_array_equal(infos["action_mask"], masks)
    assert masks[:, :, 0].all()  # hold is always allowed
    assert not masks[:, :, 2].any()  # nothing to sell at an episode's start
    masked = env.refusal_names.index("masked")
    buy, sell = np.ones((3, 10), np.uint8), np.full((3, 10), 2, np.uint8)
    env.step(buy)
    # Positions just opened: the holding period forbids selling them; the masks say so,
    # and a masked order is refused as `masked`.
    forbidden = ~env.action_masks()[:, :, 2]
    assert forbidden.any()
    _, _, _, _, infos = env.step(sell)
    assert (infos["refusals"][:, masked] > 0).any()
    # Off, the masks are all true and the rules refuse such orders for their own reasons.
    off = ploutos.make_vec(DEFAULT, num_envs=3, overrides=SMALL, action_masks=False)
    assert not off.masking
    _, infos = off.reset(seed=0)
    assert infos["action_mask"].all()
    off.step(buy)
    _, _, _, _, infos = off.step(sell)
    assert (infos["refusals"][:, masked] == 0).all() and (infos["refused"] > 0).any()


def test_target_positions_space_and_masks():
    # Five target levels with shorts: one categorical of five per ticker, masks per level.
    overrides = {
        **SMALL,
        "environment.short_selling.enabled": True,
        "environment.target_positions.enabled": True,
        "environment.target_positions.levels": [-1.0, -0.5, 0.0, 0.5, 1.0],
    }
    env = ploutos.make_vec(DEFAULT, num_envs=3, overrides=overrides)
    assert env.n_actions == 5
    assert env.single_action_space == gym.spaces.MultiDiscrete([5] * 10)
    _, infos = env.reset(seed=0)
    masks = env.action_masks()
    assert masks.shape == (3, 10, 5)
    assert masks[:, :, 2].all()  # flat: the zero level sends nothing
    full_long = np.full((3, 10), 4, np.uint8)
    _, _, _, _, infos = env.step(full_long)
    assert (infos["executed"] > 0).all()
    # Just bought: the holding period forbids the levels under the position.
    assert not env.action_masks()[:, :, 0].all()
    single = ploutos.make(DEFAULT, overrides=overrides)
    assert single.action_space == gym.spaces.MultiDiscrete([5] * 10)
    single.reset(seed=1)
    assert single.action_masks().shape == (10, 5)


def test_index_layout_and_feature_table():
    env = ploutos.make_vec(DEFAULT, num_envs=2, overrides={**SMALL, "environment.observation_layout": "index"})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (2, 3 * 10 + 4 + 1)
    table = env.feature_table()
    assert table.shape[1:] == (10, 55)
    bars = obs[:, -1].astype(int)
    mat = ploutos.make_vec(DEFAULT, num_envs=2, overrides=SMALL)
    m_obs, _ = mat.reset(seed=0)
    np.testing.assert_array_equal(m_obs[:, 34:].reshape(2, 10, 55), table[bars])
