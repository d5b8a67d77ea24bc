"""Gymnasium interfaces over the native batched env (`ploutos._ploutos.Core`)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from ._ploutos import Core

__all__ = ["PloutosVectorEnv", "PloutosEnv", "make_vec", "make", "overrides_to_specs"]

# The ranges of the config keys these arguments stand for (`training.n_envs`,
# `training.threads`) and of a seed.
MAX_ENVS = 1 << 20
MAX_THREADS = 1024
MAX_SEED = 2**64 - 1
# The arrays a `market=` dict may hold.
MARKET_KEYS = ("open", "close", "features", "day", "atr_frac", "ret_std", "mean_volume")

# Keys of the per-env info arrays (one value per env), fields of the env's info records.
RECORD_KEYS = (
    "equity", "cash", "step_return", "executed", "refused", "bar",
    "episode_reward", "episode_steps", "episode_return",
)
INFO_KEYS = RECORD_KEYS + ("costs", "refusals")


def _info_views(core: Core) -> dict:
    """The core's views, with the info records split into one view per field."""
    v = core.views()
    fields, size = core.info_layout()
    dtype = np.dtype({"names": [f[0] for f in fields], "formats": [f[1] for f in fields],
                      "offsets": [f[2] for f in fields], "itemsize": size})
    records = v.pop("infos").view(dtype)[:, 0]
    for name in RECORD_KEYS:
        v[name] = records[name]
    return v


def overrides_to_specs(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """`{"training.gamma": 0.99}` → `["training.gamma=0.99"]`, the CLI's `--set` specs.

    Values are written as JSON (numbers, booleans, lists, `None` → `null`); strings pass
    as they are (`"cpu"`, or a RON value such as `"Some(4)"`). A list of `"key=value"`
    strings passes through.
    """
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        specs = []
        for key, value in overrides.items():
            try:
                text = value if isinstance(value, str) else json.dumps(value, default=_plain)
            except TypeError as e:
                raise ValueError(f"overrides: {key}: {e}") from None
            specs.append(f"{key}={text}")
        return specs
    if isinstance(overrides, str):
        return [overrides]
    if not isinstance(overrides, (list, tuple)):
        raise ValueError(f"overrides: expected a dict or a list of 'key=value' strings, got {type(overrides).__name__}")
    return [str(s) for s in overrides]


def _plain(value):
    """NumPy scalars and arrays (a sweep grid's values) as the JSON they stand for."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not a number, a string, a list or None")


def _count(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _seed(value) -> int:
    return _count("seed", value, 0, MAX_SEED)


def _core(config, overrides, num_envs, split, seed, threads, auto_reset, market, bounds, plain=False,
          action_masks=None):
    if market is not None and not isinstance(market, Mapping):
        raise ValueError("market: expected a dict of arrays (open, close, features, day, ...)")
    if market is not None:
        unknown = [k for k in market if k not in MARKET_KEYS]
        if unknown:
            raise ValueError(f"market: unknown array {unknown[0]!r} (known: {', '.join(MARKET_KEYS)})")
        day = np.asarray(market.get("day", []))
        if day.size and (day.dtype.kind not in "iu" or day.min() < 0 or day.max() > 2**32 - 1):
            raise ValueError("market: day: expected integer trading-day indices in [0, 2^32)")
        try:
            market = {
                k: np.ascontiguousarray(v, dtype=np.uint32 if k == "day" else np.float32 if k == "features" else np.float64)
                for k, v in market.items()
            }
        except (TypeError, ValueError) as e:
            raise ValueError(f"market: {e}") from None
        if split != "train":
            raise ValueError("split: with market, episodes start in bounds (the market has no splits)")
    if split not in ("train", "validation", "test", "all"):
        raise ValueError(f"unknown split {split!r}: expected train, validation, test or all")
    if bounds is not None:
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise ValueError(f"bounds: expected (first, last) bars, got {bounds!r}")
        bounds = tuple(_count("bounds", b, 0, 2**32 - 1) for b in bounds)
    if num_envs is not None:
        num_envs = _count("num_envs", num_envs, 1, MAX_ENVS)
    if threads is not None:
        threads = _count("threads", threads, 0, MAX_THREADS)
    if seed is not None:
        _seed(seed)
    if action_masks is not None and not isinstance(action_masks, (bool, np.bool_)):
        raise ValueError(f"action_masks: expected True, False or None, got {action_masks!r}")
    return Core(
        config=None if config is None else str(config),
        overrides=overrides_to_specs(overrides),
        num_envs=num_envs,
        split=split,
        threads=threads,
        auto_reset=auto_reset,
        market=market,
        bounds=bounds,
        plain=plain,
        action_masks=None if action_masks is None else bool(action_masks),
    )


def _actions(actions, shape, n_actions: int = 3, flat: bool = False) -> np.ndarray:
    """Actions as a C-contiguous uint8 array of `shape` (or, with `flat`, one row of it
    unbatched), integer codes checked to be below `n_actions` (the native side also takes
    255 with target positions: no order). Any other shape is refused, not reshaped: a
    transposed batch would give each env another env's actions."""
    a = np.asarray(actions)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"actions: expected integer action codes, got {a.dtype} values")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            raise ValueError(f"actions: {a[bad].flat[0].item()!r} is not an integer action code")
    if a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > 255):
            bad = a[(a < 0) | (a > 255)].flat[0]
            if n_actions == 3:
                raise ValueError(f"actions: code {bad} is not 0 (hold), 1 (buy) or 2 (sell)")
            raise ValueError(f"actions: code {bad} is not a target level's index (0 to {n_actions - 1})")
        a = a.astype(np.uint8)
    if a.shape != shape:
        if flat and a.shape == shape[1:]:
            a = a.reshape(shape)
        else:
            raise ValueError(f"actions: expected shape {shape if not flat else shape[1:]} (num_envs, n_tickers), got {a.shape}")
    return np.ascontiguousarray(a)


class _Seeds:
    """The reset seeds both envs draw, as `ploutos train` does: the first reset without a seed
    uses the one given at construction (default: the config's `training.seed`), later ones
    draw from a generator seeded with it; an explicit seed restarts that generator."""

    def __init__(self, first: int):
        self._first_seed = first
        self._seeds = np.random.default_rng(first)
        self._has_reset = False

    def _reset_core(self, seed) -> None:
        if getattr(self, "_closed", False):
            raise RuntimeError("the env is closed")
        if seed is None:
            seed = self._first_seed if not self._has_reset else int(self._seeds.integers(2**63))
        else:
            # Checked before anything changes: a refused seed leaves the env as it was.
            seed = _seed(seed)
            self._seeds = np.random.default_rng(seed)
        self._has_reset = True
        self._core.reset(int(seed))


class PloutosVectorEnv(_Seeds, gym.vector.VectorEnv):
    """`num_envs` trading accounts over one market, stepped at once by Ploutos' Rust env.

    Autoreset: `AutoresetMode.SAME_STEP`. An env whose episode ends in a step restarts in
    that same step: the returned observation is the new episode's first one, the finished
    episode's last observation is in `infos["final_obs"]` (rows where
    `infos["_final_obs"]`), and the next action applies to the new episode.

    Buffers: observations, rewards, `terminated`, `truncated` and every array of `infos`
    are read-only NumPy views of the env's own buffers, rewritten in place by the next
    `reset` or `step` (pass `copy=True` to `make_vec` to get fresh copies instead).

    Infos (arrays with one row per env; for an env that finished this step, its finished
    episode): `equity`, `cash` (at the new bar's close), `step_return`, `executed` and
    `refused` (orders this step), `bar`, `episode_reward`, `episode_steps`,
    `episode_return`, `costs` `[num_envs, 4]` (this step's fees, spread, slippage and
    impact in dollars, columns `cost_kinds`), `refusals` `[num_envs, n_reasons]` (this
    step's refused orders by reason, columns `refusal_names`), `action_mask`
    `[num_envs, n_tickers, n_actions]` (allowed hold/buy/sell, or target levels, at the
    coming decision; all true unless a plugin masks actions), `final_obs`, `_final_obs`.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, core: Core, seed: int | None = None, copy: bool = False):
        self._core = core
        self.num_envs = core.num_envs
        self.n_tickers = core.n_tickers
        self.obs_dim = core.obs_dim
        self.copy = copy
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        self.n_actions = core.n_actions
        self.single_action_space = gym.spaces.MultiDiscrete([self.n_actions] * self.n_tickers)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self.refusal_names = core.refusal_names
        self.cost_kinds = core.cost_kinds
        self.tickers = core.tickers
        self.masking = core.masking
        v = _info_views(core)
        self._views = v
        self._obs, self._final_obs = v["obs"], v["final_obs"]
        self._rewards, self._terminated, self._truncated = v["rewards"], v["terminated"], v["truncated"]
        self._masks = v["action_masks"]
        self._infos = {k: v[k] for k in INFO_KEYS}
        self._infos["action_mask"] = self._masks
        self._infos["final_obs"] = self._final_obs
        self._done = np.zeros(self.num_envs, np.bool_)  # terminated | truncated, ours to write
        done = self._done.view()
        done.setflags(write=False)
        self._infos["_final_obs"] = done
        self._action_shape = (self.num_envs, self.n_tickers)
        _Seeds.__init__(self, core.config_seed if seed is None else int(seed))
        self._closed = False

    @property
    def config(self) -> str:
        """The validated config the env was built from, as RON."""
        return self._core.config

    def observation_columns(self) -> list[tuple[str, int, int]]:
        """Blocks of the observation row: (name, first column, end column)."""
        return self._core.observation_columns()

    def feature_table(self) -> np.ndarray:
        """The standardized feature table `[n_bars, n_tickers, n_features]` (index layout)."""
        return self._core.feature_table()

    def _out(self, a: np.ndarray) -> np.ndarray:
        return a.copy() if self.copy else a

    def _info(self) -> dict:
        return {k: v.copy() for k, v in self._infos.items()} if self.copy else dict(self._infos)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts a new episode in every env; env i draws from stream (seed, i).

        Without `seed`: the first reset uses the `seed` given to `make_vec` (default: the
        config's `training.seed`, as `ploutos train`), later ones draw seeds from a
        generator seeded with it.
        """
        if isinstance(seed, (list, tuple, np.ndarray)):
            raise ValueError("seed: one integer for all envs (env i draws from stream (seed, i))")
        if options and "reset_mask" in options:
            raise ValueError("options: reset_mask is not supported: a reset restarts every env (finished ones restart by themselves)")
        self._reset_core(seed)
        self._done[:] = False
        return self._out(self._obs), self._info()

    def step(self, actions):
        if self._closed:
            raise RuntimeError("the env is closed")
        if not self._has_reset:
            raise RuntimeError("call reset before step")
        self._core.step(_actions(actions, self._action_shape, self.n_actions))
        np.logical_or(self._terminated, self._truncated, out=self._done)
        return (
            self._out(self._obs),
            self._out(self._rewards),
            self._out(self._terminated),
            self._out(self._truncated),
            self._info(),
        )

    def action_masks(self) -> np.ndarray:
        """`[num_envs, n_tickers, n_actions]` bool: allowed hold/buy/sell (or target levels)
        at the coming decision (sb3-contrib's layout for a MultiDiscrete space)."""
        return self._masks

    def close_extras(self, **kwargs):
        self._closed = True


class PloutosEnv(_Seeds, gym.Env):
    """One trading account as a `gymnasium.Env` (no auto-reset; observations are copies)."""

    metadata = {"render_modes": []}

    def __init__(self, core: Core, seed: int | None = None):
        if core.num_envs != 1 or core.auto_reset:
            raise ValueError("PloutosEnv needs a core of one env without auto-reset")
        self._core = core
        self.n_tickers = core.n_tickers
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (core.obs_dim,), np.float32)
        self.n_actions = core.n_actions
        self.action_space = gym.spaces.MultiDiscrete([self.n_actions] * self.n_tickers)
        self.render_mode = None
        v = self._v = _info_views(core)
        _Seeds.__init__(self, core.config_seed if seed is None else int(seed))
        self._closed = False

    def close(self):
        self._closed = True

    def _info(self) -> dict:
        v = self._v
        info = {k: (v[k][0].copy() if v[k].ndim > 1 else v[k][0].item()) for k in INFO_KEYS}
        info["action_mask"] = v["action_masks"][0].copy()
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            _seed(seed)  # the vector env's message, before Gymnasium's own seeding
        super().reset(seed=seed)
        self._reset_core(seed)
        return self._v["obs"][0].copy(), self._info()

    def step(self, action):
        if self._closed:
            raise RuntimeError("the env is closed")
        if not self._has_reset:
            raise RuntimeError("call reset before step")
        self._core.step(_actions(action, (1, self.n_tickers), self.n_actions, flat=True))
        v = self._v
        return (
            v["obs"][0].copy(),
            float(v["rewards"][0]),
            bool(v["terminated"][0]),
            bool(v["truncated"][0]),
            self._info(),
        )

    def action_masks(self) -> np.ndarray:
        """`[n_tickers, n_actions]` bool: allowed hold/buy/sell (or target levels) at the
        coming decision."""
        return self._v["action_masks"][0].copy()


def make_vec(
    config: str | None = None,
    num_envs: int | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    split: str = "train",
    seed: int | None = None,
    threads: int | None = None,
    copy: bool = False,
    market: Mapping[str, np.ndarray] | None = None,
    bounds: tuple[int, int] | None = None,
    action_masks: bool | None = None,
) -> PloutosVectorEnv:
    """The env `ploutos train` trains on, as a Gymnasium vector env.

    - `config`: a RON file (default: `config/default.ron` when it exists, else the
      built-in defaults; `ploutos.BUILTIN` for the built-in defaults), `overrides` as the CLI's `--set` (`{"training.gamma": 0.99}`).
    - `num_envs`: default `training.n_envs`; `threads` default `training.threads`.
    - `split`: `train` (default), `validation`, `test` or `all`: episodes start at random
      bars of that split; features are standardized on the training split.
    - `seed`: the first `reset()`'s seed (default `training.seed`).
    - `market`: run on arrays instead of the config's data: `open`, `close`
      `[n_bars, n_tickers]`, `features` `[n_bars, n_tickers, n_features]`, `day`
      `[n_bars]` (trading day index), optional `atr_frac`, `ret_std`, `mean_volume`;
      episodes start in `bounds` = (first, last) bar (default: the whole market).
    - `action_masks`: the env's built-in action masks (`infos["action_mask"]`,
      `action_masks()`), default `training.action_masking` as `ploutos train`; off, masks
      are all true unless a plugin masks actions.

    Bad arguments raise `ValueError` with the message `ploutos` prints.
    """
    core = _core(config, overrides, num_envs, split, seed, threads, True, market, bounds, action_masks=action_masks)
    return PloutosVectorEnv(core, seed=seed, copy=copy)


def make(
    config: str | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    split: str = "train",
    seed: int | None = None,
    market: Mapping[str, np.ndarray] | None = None,
    bounds: tuple[int, int] | None = None,
    action_masks: bool | None = None,
) -> PloutosEnv:
    """One env of `make_vec`'s kind as a `gymnasium.Env` (episodes end; call `reset`)."""
    core = _core(config, overrides, 1, split, seed, 1, False, market, bounds, action_masks=action_masks)
    return PloutosEnv(core, seed=seed)
