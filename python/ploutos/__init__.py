"""Ploutos' trading env for Python: `make_vec` (a Gymnasium vector env) and `make` (one env).

    import ploutos
    env = ploutos.make_vec("config/default.ron", num_envs=4096, overrides={"environment.initial_cash": 10000})
    obs, infos = env.reset()            # seed: the config's training.seed, as `ploutos train`
    obs, rewards, terminated, truncated, infos = env.step(env.action_space.sample())

Returned arrays are read-only views of the env's buffers, rewritten by the next step
(see `PloutosVectorEnv`). `ploutos.sb3.Sb3VecEnv` adapts a vector env to Stable-Baselines3.
"""

from ._env import PloutosEnv, PloutosVectorEnv, make, make_vec, overrides_to_specs
from ._ploutos import BUILTIN, DEFAULT_CONFIG

__all__ = ["make_vec", "make", "PloutosVectorEnv", "PloutosEnv", "overrides_to_specs", "DEFAULT_CONFIG", "BUILTIN"]
