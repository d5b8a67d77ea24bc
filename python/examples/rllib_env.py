"""Registering Ploutos' env with RLlib (Ray), for users on Ray.

    pip install "ray[rllib]"
    python python/examples/rllib_env.py --config config/default.ron

RLlib's new API stack builds its own `gymnasium.vector` env from a registered single-env
creator, one per env runner; `ploutos.make` is that creator (each call builds a one-env
Ploutos env of the config, with its own seed). For many envs per runner at Ploutos' speed,
`ploutos.make_vec` is a `gymnasium.vector.VectorEnv` too (SAME_STEP autoreset).

Ray is not needed by the package or its tests: this file only shows the registration.
"""

import argparse


def env_creator(env_config: dict):
    import ploutos

    return ploutos.make(
        env_config.get("config", "config/default.ron"),
        overrides=env_config.get("overrides"),
        split=env_config.get("split", "train"),
        seed=env_config.get("seed"),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="config/default.ron")
    ap.add_argument("--iterations", type=int, default=5)
    a = ap.parse_args()

    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env

    register_env("ploutos", env_creator)
    algo = (
        PPOConfig()
        .environment("ploutos", env_config={"config": a.config})
        .env_runners(num_env_runners=1, num_envs_per_env_runner=8)
        .build()
    )
    for i in range(a.iterations):
        result = algo.train()
        print(i, result.get("env_runners", {}).get("episode_return_mean"))


if __name__ == "__main__":
    main()
