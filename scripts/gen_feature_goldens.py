#!/usr/bin/env python3
"""Generate the golden fixtures of tests/features_golden.rs.

Writes, under tests/fixtures/features/:
  {daily,hourly}_bars.csv  timestamp,open,high,low,close,volume,day (deterministic series)
  {daily,hourly}_ta.csv    timestamp + the reference value of every feature that has one

The references follow FEATURES.md: `ta` 0.11.0 for the classic indicators (Bollinger
evaluated two-pass with numpy, as the contract says), pandas/numpy two-pass for the price
action, return statistics, z-score, autocorrelation and volume ratio, and an independent
pandas groupby implementation of the pivots and 52-week levels. Values before a feature's
first bar are left empty; after it, an empty cell means "undefined" (NaN or +-inf in the
reference).

Needs a scratch virtualenv outside the repository:
    python3 -m venv /tmp/ta-venv && /tmp/ta-venv/bin/pip install ta==0.11.0 pandas numpy
    /tmp/ta-venv/bin/python scripts/gen_feature_goldens.py
The Rust tests only read the committed CSVs; they never need Python.
"""

import datetime as dt
import os

import numpy as np
import pandas as pd
import ta
from numpy.lib.stride_tricks import sliding_window_view as windows

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "features")

FIRST_BAR = {
    "sma_10": 9, "sma_20": 19, "sma_50": 49, "ema_10": 9, "ema_20": 19, "macd": 25,
    "macd_signal": 33, "macd_diff": 33, "adx_14": 27, "rsi_7": 6, "rsi_14": 13, "stoch_k": 13,
    "stoch_d": 15, "roc_10": 10, "roc_20": 20, "williams_r": 13, "tsi": 37, "ultimate_osc": 28,
    "cci_20": 19, "mfi_14": 13, "bb_high": 19, "bb_low": 19, "bb_width": 19, "bb_pct": 19,
    "atr_14": 13, "kc_high": 19, "kc_low": 19, "ulcer_index": 13, "obv": 0, "cmf": 19,
    "force_index": 13, "vpt": 1, "eom": 1, "volume_ratio": 19, "vwap": 13,
    "pivot_r1": None, "pivot_r2": None, "pivot_s1": None, "pivot_s2": None,
    "high_52w": 0, "low_52w": 0,
    "ret_mean_20": 20, "ret_std_20": 20, "ret_skew_20": 20, "ret_kurt_20": 20,
    "zscore_20": 19, "autocorr_20": 21,
    "body_size": 0, "upper_shadow": 0, "lower_shadow": 0, "gap": 1, "true_range": 1,
    "daily_range": 0,
}


def make_bars(n, bars_per_day, start_price, vol, seed, hourly):
    """A random walk with realistic OHLC, some zero-volume bars, some h == l bars and one
    perfectly flat stretch (every window statistic degenerates there)."""
    rng = np.random.default_rng(seed)
    close = np.empty(n)
    open_ = np.empty(n)
    high = np.empty(n)
    low = np.empty(n)
    volume = np.empty(n)
    prev = start_price
    for t in range(n):
        o = round(prev * (1.0 + rng.normal(0, vol / 4)), 2)
        c = round(o * (1.0 + rng.normal(0.0002, vol)), 2)
        h = round(max(o, c) * (1.0 + abs(rng.normal(0, vol / 2))), 2)
        lo = round(min(o, c) * (1.0 - abs(rng.normal(0, vol / 2))), 2)
        v = float(int(rng.lognormal(12, 0.5)))
        open_[t], high[t], low[t], close[t], volume[t] = o, h, lo, c, v
        prev = c
    # zero-volume bars
    for t in rng.choice(np.arange(30, n), size=6, replace=False):
        volume[t] = 0.0
    # single bars with h == l (o = h = l = c)
    for t in rng.choice(np.arange(60, n - 40), size=5, replace=False):
        p = close[t - 1]
        open_[t] = high[t] = low[t] = close[t] = p
    # a flat stretch of 24 identical bars at an exactly representable price
    s = n // 2
    flat = float(round(close[s - 1]))
    for t in range(s, s + 24):
        open_[t] = high[t] = low[t] = close[t] = flat
        volume[t] = 1000.0
    # the walk after the stretch continues from the flat price
    ratio = flat / close[s + 24] if close[s + 24] else 1.0
    for t in range(s + 24, n):
        for a in (open_, high, low, close):
            a[t] = round(a[t] * ratio, 2)
    # days: hourly series have 7 bars per day, with a few shortened days
    day = np.zeros(n, dtype=np.int64)
    if bars_per_day == 1:
        day[:] = np.arange(n)
    else:
        d, k, short = 0, 0, {5: 4, 17: 3, 40: 5}
        for t in range(n):
            if k == short.get(d, bars_per_day):
                d, k = d + 1, 0
            day[t] = d
            k += 1
    stamps = []
    base = dt.date(2021, 1, 4)
    for t in range(n):
        date = base + dt.timedelta(days=int(day[t]))
        if hourly:
            k = t - int(np.searchsorted(day, day[t]))
            stamps.append(f"{date.isoformat()}T{9 + k:02d}:30:00-05:00")
        else:
            stamps.append(date.isoformat())
    return pd.DataFrame({"timestamp": stamps, "open": open_, "high": high, "low": low,
                         "close": close, "volume": volume, "day": day})


def rolling_two_pass(x, w, f):
    """f applied to every full window of x (numpy, each window on its own)."""
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1:] = np.array([f(win) for win in windows(x, w)])
    return out


def references(df):
    o, h, l, c, v = (df[k].astype(float) for k in ("open", "high", "low", "close", "volume"))
    ref = {}
    ref["sma_10"] = ta.trend.SMAIndicator(c, 10).sma_indicator()
    ref["sma_20"] = ta.trend.SMAIndicator(c, 20).sma_indicator()
    ref["sma_50"] = ta.trend.SMAIndicator(c, 50).sma_indicator()
    ref["ema_10"] = ta.trend.EMAIndicator(c, 10).ema_indicator()
    ref["ema_20"] = ta.trend.EMAIndicator(c, 20).ema_indicator()
    macd = ta.trend.MACD(c, window_slow=26, window_fast=12, window_sign=9)
    ref["macd"], ref["macd_signal"], ref["macd_diff"] = macd.macd(), macd.macd_signal(), macd.macd_diff()
    ref["adx_14"] = ta.trend.ADXIndicator(h, l, c, window=14).adx()
    ref["rsi_7"] = ta.momentum.RSIIndicator(c, 7).rsi()
    ref["rsi_14"] = ta.momentum.RSIIndicator(c, 14).rsi()
    st = ta.momentum.StochasticOscillator(h, l, c, window=14, smooth_window=3)
    ref["stoch_k"], ref["stoch_d"] = st.stoch(), st.stoch_signal()
    ref["roc_10"] = ta.momentum.ROCIndicator(c, 10).roc()
    ref["roc_20"] = ta.momentum.ROCIndicator(c, 20).roc()
    ref["williams_r"] = ta.momentum.WilliamsRIndicator(h, l, c, lbp=14).williams_r()
    ref["tsi"] = ta.momentum.TSIIndicator(c, window_slow=25, window_fast=13).tsi()
    ref["ultimate_osc"] = ta.momentum.UltimateOscillator(h, l, c, 7, 14, 28, 4.0, 2.0, 1.0).ultimate_oscillator()
    ref["cci_20"] = ta.trend.CCIIndicator(h, l, c, window=20, constant=0.015).cci()
    ref["mfi_14"] = ta.volume.MFIIndicator(h, l, c, v, window=14).money_flow_index()

    # Bollinger: ta's definition, evaluated two-pass (population std) as FEATURES.md says;
    # checked against ta itself where the bands are not degenerate.
    cv = c.to_numpy()
    mavg = rolling_two_pass(cv, 20, np.mean)
    sd = rolling_two_pass(cv, 20, lambda x: np.sqrt(np.mean((x - x.mean()) ** 2)))
    hb, lb = mavg + 2 * sd, mavg - 2 * sd
    with np.errstate(divide="ignore", invalid="ignore"):
        ref["bb_high"], ref["bb_low"] = hb, lb
        ref["bb_width"] = (hb - lb) / mavg * 100
        ref["bb_pct"] = (cv - lb) / (hb - lb)
    bb = ta.volatility.BollingerBands(c, window=20, window_dev=2)
    ok = sd > 1e-6 * mavg
    assert np.allclose(bb.bollinger_hband().to_numpy()[ok], hb[ok], rtol=1e-9)
    assert np.allclose(bb.bollinger_pband().to_numpy()[ok], ref["bb_pct"][ok], rtol=1e-6, atol=1e-9)

    ref["atr_14"] = ta.volatility.AverageTrueRange(h, l, c, window=14).average_true_range()
    kc = ta.volatility.KeltnerChannel(h, l, c, window=20, window_atr=10, original_version=True)
    ref["kc_high"], ref["kc_low"] = kc.keltner_channel_hband(), kc.keltner_channel_lband()
    ref["ulcer_index"] = ta.volatility.UlcerIndex(c, window=14).ulcer_index()

    ref["obv"] = ta.volume.OnBalanceVolumeIndicator(c, v).on_balance_volume()
    ref["cmf"] = ta.volume.ChaikinMoneyFlowIndicator(h, l, c, v, window=20).chaikin_money_flow()
    ref["force_index"] = ta.volume.ForceIndexIndicator(c, v, window=13).force_index()
    ref["vpt"] = ta.volume.VolumePriceTrendIndicator(c, v).volume_price_trend()
    ref["eom"] = ta.volume.EaseOfMovementIndicator(h, l, v, window=14).ease_of_movement()
    with np.errstate(divide="ignore", invalid="ignore"):
        ref["volume_ratio"] = v.to_numpy() / rolling_two_pass(v.to_numpy(), 20, np.mean)
    ref["vwap"] = ta.volume.VolumeWeightedAveragePrice(h, l, c, v, window=14).volume_weighted_average_price()

    # Pivots and 52-week levels: pandas groupby over the day ordinal (no reference library).
    g = df.groupby("day")
    daily = pd.DataFrame({"H": g["high"].max(), "L": g["low"].min(), "C": g["close"].last()})
    prev = daily.shift(1)
    P = (prev.H + prev.L + prev.C) / 3
    piv = pd.DataFrame({"pivot_r1": 2 * P - prev.L, "pivot_r2": P + (prev.H - prev.L),
                        "pivot_s1": 2 * P - prev.H, "pivot_s2": P - (prev.H - prev.L)})
    for k in piv:
        ref[k] = piv[k].reindex(df["day"]).to_numpy()
    days = df["day"].to_numpy()
    hv, lv = h.to_numpy(), l.to_numpy()
    ref["high_52w"] = np.array([hv[(days >= days[t] - 251) & (np.arange(len(df)) <= t)].max() for t in range(len(df))])
    ref["low_52w"] = np.array([lv[(days >= days[t] - 251) & (np.arange(len(df)) <= t)].min() for t in range(len(df))])

    # Return statistics, numpy two-pass.
    r = np.full(len(cv), np.nan)
    r[1:] = cv[1:] / cv[:-1] - 1

    def skew(x):
        n, d = len(x), x - x.mean()
        m2, m3 = np.mean(d ** 2), np.mean(d ** 3)
        return np.nan if m2 == 0 else np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5

    def kurt(x):
        n, d = len(x), x - x.mean()
        m2, m4 = np.mean(d ** 2), np.mean(d ** 4)
        return np.nan if m2 == 0 else (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2 ** 2 - 3) + 6)

    ref["ret_mean_20"] = rolling_two_pass(r, 20, np.mean)
    ref["ret_std_20"] = rolling_two_pass(r, 20, lambda x: np.sqrt(np.sum((x - x.mean()) ** 2) / 19))
    ref["ret_skew_20"] = rolling_two_pass(r, 20, skew)
    ref["ret_kurt_20"] = rolling_two_pass(r, 20, kurt)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref["zscore_20"] = (cv - mavg) / sd
    ac = np.full(len(cv), np.nan)
    for t in range(21, len(cv)):
        a, b = r[t - 20:t], r[t - 19:t + 1]
        da, db = a - a.mean(), b - b.mean()
        saa, sbb = np.sum(da * da), np.sum(db * db)
        ac[t] = np.nan if saa == 0 or sbb == 0 else np.sum(da * db) / np.sqrt(saa * sbb)
    ref["autocorr_20"] = ac

    ov, hv, lv = o.to_numpy(), h.to_numpy(), l.to_numpy()
    c1 = np.concatenate([[np.nan], cv[:-1]])
    ref["body_size"] = (cv - ov) / ov
    ref["upper_shadow"] = (hv - np.maximum(ov, cv)) / cv
    ref["lower_shadow"] = (np.minimum(ov, cv) - lv) / cv
    ref["gap"] = ov / c1 - 1
    ref["true_range"] = np.fmax(hv, c1) - np.fmin(lv, c1)
    ref["true_range"][0] = np.nan
    ref["daily_range"] = (hv - lv) / cv

    first_day_end = int(np.searchsorted(days, days[0], side="right"))
    out = pd.DataFrame({"timestamp": df["timestamp"]})
    for name, first in FIRST_BAR.items():
        x = np.asarray(ref[name], dtype=float).copy()
        x[~np.isfinite(x)] = np.nan
        x[: first_day_end if first is None else first] = np.nan
        out[name] = x
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    series = {
        "daily": make_bars(400, 1, 48.0, 0.015, 20240601, hourly=False),
        "hourly": make_bars(588, 7, 2500.0, 0.003, 20240602, hourly=True),
    }
    for name, df in series.items():
        bars = df.copy()
        bars["volume"] = bars["volume"].astype(np.int64)
        bars.to_csv(os.path.join(OUT, f"{name}_bars.csv"), index=False, float_format="%.2f")
        references(df).to_csv(os.path.join(OUT, f"{name}_ta.csv"), index=False, float_format="%.8g", na_rep="")
        print(name, len(df), "bars")


if __name__ == "__main__":
    main()
