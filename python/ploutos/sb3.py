"""A thin Stable-Baselines3 `VecEnv` over `PloutosVectorEnv` (PPO, and sb3-contrib's MaskablePPO).

    from stable_baselines3 import PPO
    from ploutos.sb3 import Sb3VecEnv
    model = PPO("MlpPolicy", Sb3VecEnv(ploutos.make_vec(num_envs=16)), n_steps=256).learn(100_000)

SB3 keeps the observation of one step while it takes the next, so the adapter hands it
copies. Finished episodes carry `terminal_observation` and, for a truncation, SB3
bootstraps from it; `episode` ({"r", "l"}) feeds SB3's `ep_rew_mean`.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from ._env import PloutosVectorEnv

__all__ = ["Sb3VecEnv"]


class Sb3VecEnv(VecEnv):
    def __init__(self, env: PloutosVectorEnv):
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions = None
        self._seed = None

    def seed(self, seed=None):
        self._seed = seed
        return [seed] * self.num_envs

    def reset(self):
        obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        return obs.copy()

    def step_async(self, actions):
        self._actions = actions

    def step_wait(self):
        obs, rewards, terminated, truncated, infos = self.env.step(self._actions)
        dones = terminated | truncated
        n = self.num_envs
        out = [{} for _ in range(n)]
        for i in np.flatnonzero(dones):
            out[i] = {
                "terminal_observation": infos["final_obs"][i].copy(),
                "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                "episode": {"r": float(infos["episode_reward"][i]), "l": int(infos["episode_steps"][i])},
            }
        return obs.copy(), rewards.copy(), dones, out

    def action_masks(self) -> np.ndarray:
        return self.env.action_masks().reshape(self.num_envs, -1).copy()

    def close(self):
        self.env.close()

    def get_attr(self, name, indices=None):
        # A missing attribute raises AttributeError, as DummyVecEnv's does.
        return [getattr(self.env, name)] * len(self._get_indices(indices))

    def _all(self, what: str, indices) -> None:
        """The envs are one batched env: a method or an attribute is all of them at once."""
        if indices is not None and sorted(set(self._get_indices(indices))) != list(range(self.num_envs)):
            raise ValueError(f"{what}: ploutos' envs are one batched env, so it applies to all of them, not to indices {indices!r}")

    def set_attr(self, name, value, indices=None):
        self._all(f"set_attr({name!r})", indices)
        setattr(self.env, name, value)

    def env_method(self, method_name, *args, indices=None, **kwargs):
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in self._get_indices(indices)]
        self._all(f"env_method({method_name!r})", indices)
        result = getattr(self.env, method_name)(*args, **kwargs)
        return [result] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * len(self._get_indices(indices))
