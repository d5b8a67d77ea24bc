#!/usr/bin/env python3
"""Golden values for `ploutos::backtest::metrics::return_stats` from empyrical.

An independent implementation checks ours: `tests/backtest_metrics.rs` reads the equity
curves written here and compares its statistics with empyrical's at 1e-9 relative.

Run it from a scratch virtualenv outside the repository, never from the project:

    python3 -m venv /tmp/emp-venv
    /tmp/emp-venv/bin/pip install empyrical-reloaded   # 0.7.1 at the time of writing
    /tmp/emp-venv/bin/python scripts/gen_metric_goldens.py

Outputs (deterministic: fixed seeds, full-precision floats):
    tests/fixtures/metrics/<name>.csv   one column `equity`, one row per bar
    tests/fixtures/metrics/goldens.json  per series: bars_per_year and empyrical's values

Returns are recomputed from the written equity as `E_i / E_{i-1} - 1`, exactly as
`return_stats` does, so both sides see bit-identical return series. empyrical's
`max_drawdown` is negative; the JSON stores its absolute value, ploutos' convention.
"""

import json
import pathlib

import empyrical
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics"
INITIAL = 100_000.0


def series():
    """(name, bars_per_year, simple returns) of three deterministic series."""
    # Hourly bars, two years, fat-tailed returns with a small positive drift.
    rng = np.random.default_rng(20240601)
    hourly = 0.00012 + 0.004 * rng.standard_t(df=4, size=252 * 7 * 2) / np.sqrt(2.0)
    # Daily bars, three years: a rally, a crash, a slow recovery.
    rng = np.random.default_rng(11)
    daily = np.concatenate(
        [
            0.0012 + 0.010 * rng.standard_normal(300),
            -0.003 + 0.020 * rng.standard_normal(90),
            0.0020 + 0.012 * rng.standard_normal(366),
        ]
    )
    # Daily bars, one and a half years of losses (negative CAGR and Sharpe).
    rng = np.random.default_rng(99)
    losing = -0.0007 + 0.015 * rng.standard_normal(378)
    return [
        ("hourly_drift", 252.0 * 7.0, hourly),
        ("daily_crash", 252.0, daily),
        ("daily_losing", 252.0, losing),
    ]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    goldens = {}
    for name, bars_per_year, rets in series():
        equity = INITIAL * np.concatenate([[1.0], np.cumprod(1.0 + rets)])
        path = OUT / f"{name}.csv"
        with path.open("w") as f:
            f.write("equity\n")
            for e in equity:
                f.write(repr(float(e)) + "\n")
        # Read back what was written, and take returns the way ploutos does.
        written = np.array([float(x) for x in path.read_text().split()[1:]])
        r = written[1:] / written[:-1] - 1.0
        ann = bars_per_year
        goldens[name] = {
            "bars_per_year": ann,
            "returns": int(len(r)),
            "empyrical_version": empyrical.__version__,
            "total_return": float(empyrical.cum_returns_final(r)),
            "sharpe": float(empyrical.sharpe_ratio(r, annualization=ann)),
            "sortino": float(empyrical.sortino_ratio(r, annualization=ann)),
            "cagr": float(empyrical.annual_return(r, annualization=ann)),
            "annual_volatility": float(empyrical.annual_volatility(r, annualization=ann)),
            "max_drawdown": abs(float(empyrical.max_drawdown(r))),
            "calmar": float(empyrical.calmar_ratio(r, annualization=ann)),
        }
    (OUT / "goldens.json").write_text(json.dumps(goldens, indent=2, sort_keys=True) + "\n")
    for name, g in goldens.items():
        print(name, {k: v for k, v in g.items() if k != "empyrical_version"})


if __name__ == "__main__":
    main()
