"""The examples run (tiny settings); the RLlib one's env creator builds a working env."""

import importlib.util
import subprocess
import sys

import pytest

from conftest import REPO

EXAMPLES = REPO / "python" / "examples"
QUICK = ["--set", "environment.episode_length=20"]


@pytest.mark.parametrize("script,args", [
    ("cleanrl_ppo.py", ["--num-envs", "8", "--num-steps", "16", "--total-timesteps", "256", "--num-minibatches", "2"]),
    ("sb3_ppo.py", ["--envs", "4", "--timesteps", "512", *QUICK]),
    ("sb3_maskable_ppo.py", ["--envs", "4", "--timesteps", "512", *QUICK]),
])
def test_example_runs(script, args):
    p = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]


def test_rllib_env_creator_builds_a_gymnasium_env():
    spec = importlib.util.spec_from_file_location("rllib_env", EXAMPLES / "rllib_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # Ray is imported only in main()
    env = module.env_creator({"config": str(REPO / "config" / "default.ron"), "seed": 3,
                              "overrides": {"environment.episode_length": 5}})
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    obs, reward, term, trunc, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and "equity" in info
