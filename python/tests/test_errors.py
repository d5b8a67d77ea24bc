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
