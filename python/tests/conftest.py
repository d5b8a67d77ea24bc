"""Shared helpers of the Python package's tests (run by scripts/checks/python-package.sh)."""

import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT = str(REPO / "config" / "default.ron")
# Small and quick: 4 envs, the default config's market.
SMALL = {"training.n_envs": 4, "training.threads": 1}


@pytest.fixture(scope="session")
def repo():
    return REPO


def cargo_target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def signal_market(seed: int, shuffle: bool, n_bars: int = 3000):
    """The planted-signal market of tests/ppo_learning.rs: one ticker whose next-bar return
    has the sign of a leading indicator (feature 0) with probability 0.8 (|r| 0.5%..1.5%);
    feature 1 is noise; `shuffle` permutes the feature rows in time (the control)."""
    rng = np.random.default_rng(seed)
    signal = np.where(rng.random(n_bars) < 0.5, 1.0, -1.0).astype(np.float32)
    close = np.empty(n_bars)
    opens = np.empty(n_bars)
    c = 100.0
    for t in range(n_bars):
        opens[t] = c
        if t > 0:
            agree = rng.random() < 0.8
            sign = signal[t - 1] * (1.0 if agree else -1.0)
            c = c * np.exp(sign * rng.uniform(0.005, 0.015))
        close[t] = c
    rows = np.stack([signal, rng.uniform(-1.0, 1.0, n_bars).astype(np.float32)], axis=1)
    if shuffle:
        rows = rows[rng.permutation(n_bars)]
    return {
        "open": opens[:, None],
        "close": close[:, None],
        "features": rows[:, None, :],
        "day": (np.arange(n_bars) // 7).astype(np.uint32),
        "atr_frac": np.zeros((n_bars, 1)),
        "ret_std": np.full((n_bars, 1), 0.01),
        "mean_volume": np.full((n_bars, 1), 1e6),
    }


# The environment of tests/ppo_learning.rs: all-in buys, no rules in the way, log returns.
SIGNAL_ENV = {
    "environment.buy_pct": 1.0,
    "environment.max_position_pct": 1.0,
    "environment.spread_bps": 1.0,
    "environment.slippage_atr_mult": 0.0,
    "environment.impact_coef": 0.0,
    "environment.pdt.enabled": False,
    "environment.max_trades_per_day": None,
    "environment.min_holding_bars": 0,
    "environment.reward.mode": "log_return",
    "environment.episode_length": 100,
}
