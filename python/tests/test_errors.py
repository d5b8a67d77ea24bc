"""Bad arguments raise Python exceptions with the one-line messages of the `ploutos` CLI."""

import os
import subprocess

import numpy as np
import pytest

import ploutos
from conftest import DEFAULT, REPO, SMALL, cargo_target_dir


def ploutos_binary():
    """The `ploutos` binary `cargo test` built, when there is one."""
    for profile in ("debug", "release"):
        path = cargo_target_dir() / profile / "ploutos"
        if path.exists():
            return path
    return None


def cli_error(args):
    """`ploutos: error: ` line of the CLI for `args`, or None without a binary."""
    exe = ploutos_binary()
    if exe is None:
        return None
    p = subprocess.run([str(exe), *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("ploutos: error: "), line
    return line[len("ploutos: error: "):]


CASES = [
    # (make_vec keyword arguments, the CLI arguments that give the same error, expected part)
    ({"overrides": {"training.learning_rate": 2}}, ["--set", "training.learning_rate=2"], "out of range"),
    ({"overrides": {"environment.no_such_key": 1}}, ["--set", "environment.no_such_key=1"], "no_such_key"),
    ({"overrides": ["training.gamma"]}, ["--set", "training.gamma"], "training.gamma"),
    ({"config": "no/such/file.ron"}, ["--config", "no/such/file.ron"], "no/such/file.ron"),
]


@pytest.mark.parametrize("kwargs,cli,part", CASES)
def test_bad_config_raises_the_cli_message(kwargs, cli, part, tmp_path):
    kwargs = {"config": DEFAULT, **kwargs}
    cwd = os.getcwd()
    os.chdir(REPO)  # relative paths as the CLI sees them
    try:
        with pytest.raises(ValueError) as e:
            ploutos.make_vec(**kwargs)
    finally:
        os.chdir(cwd)
    msg = str(e.value)
    assert part in msg and "\n" not in msg
    args = ["bench", "--envs", "1", "--seconds", "0.01"] + (cli if "--config" in cli else ["--config", DEFAULT, *cli])
    expected = cli_error(args)
    if expected is not None:
        assert msg == expected


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="unknown split 'nope'"):
        ploutos.make_vec(DEFAULT, split="nope")
    with pytest.raises(ValueError, match="num_envs"):
        ploutos.make_vec(DEFAULT, num_envs=0)
    with pytest.raises(ValueError, match="seed"):
        ploutos.make_vec(DEFAULT, num_envs=1, seed=-1)
    with pytest.raises(ValueError, match="market"):
        ploutos.make_vec(DEFAULT, num_envs=1, market={"open": np.ones((10, 1))})
    env = ploutos.make_vec(DEFAULT, num_envs=2, overrides=SMALL)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions: expected shape \(2, 10\)"):
        env.step(np.zeros((3, 10), np.uint8))
    with pytest.raises(ValueError, match="actions: code 3"):
        env.step(np.full((2, 10), 3))
    with pytest.raises(ValueError, match="actions: code -1"):
        env.step(np.full((2, 10), -1))
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=[1, 2])


def test_stepping_a_finished_single_env_raises():
    env = ploutos.make(DEFAULT, overrides={"environment.episode_length": 2})
    env.reset(seed=0)
    env.step(env.action_space.sample())
    *_, trunc, _ = env.step(env.action_space.sample())
    assert trunc
    with pytest.raises(ValueError, match="call reset"):
        env.step(env.action_space.sample())


def tiny_market(n_bars=60, n_tickers=2):
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n_bars, n_tickers)), axis=0))
    return {"open": close.copy(), "close": close, "features": np.zeros((n_bars, n_tickers, 3), np.float32),
            "day": np.arange(n_bars, dtype=np.uint32)}


@pytest.mark.parametrize("change,part", [
    (lambda m: {**m, "open": m["open"][:, :0], "close": m["close"][:, :0], "features": m["features"][:, :0]},
     "at least 2 bars of 1 ticker"),
    (lambda m: {**m, "volume": m["close"]}, "unknown array 'volume'"),
    (lambda m: {**m, "tickers": ["AAPL", "MSFT"]}, "unknown array 'tickers'"),
    (lambda m: {**m, "ret_std": -np.ones((60, 2))}, "ret_std[0, 0] = -1 is negative"),
    (lambda m: {**m, "day": m["day"].astype(np.int64) + 2**32}, "day: expected integer trading-day indices"),
    (lambda m: {**m, "close": np.where(np.arange(60)[:, None] == 5, np.nan, m["close"])}, "close[5, 0] = NaN"),
    (lambda m: {**m, "open": -m["open"]}, "is not a positive price"),
    (lambda m: {**m, "features": np.full_like(m["features"], np.inf)}, "features has a non-finite value"),
    (lambda m: {**m, "day": m["day"][::-1].copy()}, "is before day"),
    (lambda m: {**m, "day": m["day"].astype(np.int64) - 1}, "day: expected integer trading-day indices"),
])
def test_a_bad_market_raises_one_line(change, part):
    with pytest.raises(ValueError) as e:
        ploutos.make_vec(ploutos.BUILTIN, num_envs=1, market=change(tiny_market()))
    assert part in str(e.value) and "\n" not in str(e.value)


def test_a_cost_inputs_warm_up_may_be_nan():
    """As `ploutos train`'s own markets: a non-finite slippage or impact input counts as 0."""
    m = tiny_market()
    m["ret_std"] = np.full((60, 2), 0.01)
    m["ret_std"][:19] = np.nan
    env = ploutos.make_vec(ploutos.BUILTIN, num_envs=1, market=m, bounds=(20, 59))
    env.reset(seed=0)
    assert np.isfinite(env.step(np.ones((1, 2), np.uint8))[1]).all()


def test_arguments_are_checked_before_anything_changes():
    for kwargs, part in [({"num_envs": 10**7}, "num_envs"), ({"threads": 2000}, "threads"), ({"threads": -1}, "threads"),
                         ({"seed": 2**64}, "seed"), ({"seed": True}, "seed"), ({"action_masks": "no"}, "action_masks"),
                         ({"overrides": 5}, "overrides"), ({"market": tiny_market(), "split": "test"}, "split"),
                         ({"market": tiny_market(), "bounds": (-1, 10)}, "bounds")]:
        with pytest.raises(ValueError, match=part):
            ploutos.make_vec(ploutos.BUILTIN, **{"num_envs": 1, **kwargs})
    # NumPy values in overrides (a sweep grid's) are the numbers they hold.
    env = ploutos.make_vec(DEFAULT, num_envs=np.int64(2), overrides={**SMALL, "environment.episode_length": np.int64(50)})
    env.reset(seed=0)
    # A refused seed leaves the env as it was (its next seedless reset draws as a twin's);
    # actions are integer codes of the exact shape.
    twin = ploutos.make_vec(DEFAULT, num_envs=2, overrides={**SMALL, "environment.episode_length": 50})
    twin.reset(seed=0)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=2**64)
    assert np.array_equal(env.reset()[0], twin.reset()[0])
    for bad, part in [(np.full((2, 10), 1.7), "1.7 is not an integer action code"),
                      (np.full((2, 10), np.nan), "is not an integer action code"),
                      (np.zeros((10, 2)), r"expected shape \(2, 10\)"), (np.zeros(20), r"expected shape \(2, 10\)"),
                      ("hold", "expected integer action codes"), (None, "expected integer action codes")]:
        with pytest.raises(ValueError, match=part):
            env.step(bad)
    env.step(np.ones((2, 10), np.int64))
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros((2, 10), np.uint8))


def test_reset_infos_hold_the_starting_account():
    env = ploutos.make_vec(DEFAULT, num_envs=2, overrides={**SMALL, "environment.initial_cash": 12345})
    _, infos = env.reset(seed=0)
    assert list(infos["equity"]) == [12345, 12345] and list(infos["cash"]) == [12345, 12345]
    assert (infos["bar"] > 0).all() and (infos["episode_steps"] == 0).all()
    single = ploutos.make(DEFAULT, overrides={"environment.initial_cash": 12345})
    assert single.reset(seed=0)[1]["equity"] == 12345


def _make_in_child(queue):
    env = ploutos.make(DEFAULT, overrides={"environment.episode_length": 5})
    obs = env.reset(seed=1)[0]
    env.step(np.ones(10, np.int64))
    queue.put(obs.shape)


def test_a_forked_child_builds_and_steps_its_own_env():
    """After the parent built an env (and so computed features), a forked child builds one
    too: Gymnasium's AsyncVectorEnv and SB3's SubprocVecEnv fork by default on Linux."""
    import multiprocessing

    ploutos.make(DEFAULT).reset(seed=0)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_make_in_child, args=(queue,))
    child.start()
    child.join(120)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive, "the forked child hung"
    assert child.exitcode == 0
    assert len(queue.get(timeout=5)) == 1


def test_the_sb3_adapter_refuses_what_a_batched_env_cannot_do():
    pytest.importorskip("stable_baselines3")
    from ploutos.sb3 import Sb3VecEnv

    vec = Sb3VecEnv(ploutos.make_vec(DEFAULT, num_envs=2, overrides=SMALL))
    assert vec.get_attr("n_tickers") == [10, 10]
    with pytest.raises(AttributeError):
        vec.get_attr("no_such_attribute")
    with pytest.raises(ValueError, match="one batched env"):
        vec.env_method("reset", indices=[0])
    vec.env_method("reset", indices=[0, 1])
