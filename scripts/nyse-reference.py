"""Writes tests/fixtures/market/nyse_sessions.csv: every NYSE regular session of
2000-2030 with its close (New York time), from pandas_market_calendars, the reference
that tests/nyse_calendar.rs checks Ploutos' own NYSE calendar (src/market/nyse.rs) against.

Run once by hand (pip install pandas_market_calendars); the test reads the committed file.
"""

import pathlib

import pandas_market_calendars as mcal

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/market/nyse_sessions.csv"


def main() -> None:
    nyse = mcal.get_calendar("NYSE")
    sched = nyse.schedule(start_date="2000-01-01", end_date="2030-12-31", tz="America/New_York")
    lines = ["date,open,close"]
    for day, row in sched.iterrows():
        lines.append(f"{day.date()},{row.market_open:%H:%M},{row.market_close:%H:%M}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{OUT}: {len(lines) - 1} sessions, pandas_market_calendars {mcal.__version__}")


if __name__ == "__main__":
    main()
