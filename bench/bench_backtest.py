"""Backtest speed against backtrader (issue 14), on the same shipped daily bars in one run.

Ours: `autotrader backtest`'s engine (the live decision path: strategy, risk, portfolio, order manager,
paper broker) over 2021-01-01 .. 2025-09-30. backtrader: a comparable rule (daily close above SMA-200,
a pullback to SMA-9 and a bounce above it and the open; stop at the 10-day swing low, target 2R, a
bracket order sized at 1 % risk), event-driven and with `runonce`. bars/s = daily bars in the range
over wall time (data loading included for both), the best of `RUNS` runs of each (a shared machine's
noise only ever slows a run down; each run's time is printed too). Target: ours >= 2x backtrader's
runonce bars/s.
Then ours alone over ~500 symbols x 6 years (the NIFTY 500 bars of ../shared, skipped when absent), in a
child process: bars/s and peak RSS. Target: RSS < 500 MB.

Run: .venv/bin/python bench/bench_backtest.py [--all-symbols]
"""

from __future__ import annotations

import asyncio
import logging
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from bench.nifty500 import NIFTY500, write_data_dir  # noqa: E402
from engine.backtest import run_backtest  # noqa: E402
from engine.data.instruments import filter_universe, load_instrument_table  # noqa: E402
from engine.settings import load_settings  # noqa: E402
from engine.storage import BarStore  # noqa: E402

START, END = date(2021, 1, 1), date(2025, 9, 30)
SLOW_SMA = 200  # backtrader's rule needs this many bars; its runonce mode fails on a shorter feed
TARGET_RATIO = 2.0
RUNS = 3
SCALE_RANGE = (date(2019, 1, 1), date(2024, 12, 31))  # 6 years after the 2018 warm-up
TARGET_RSS_MB = 500


def _symbols(all_symbols: bool) -> list[str]:
    settings = load_settings()
    table = load_instrument_table(Path(settings.data_dir))
    if all_symbols:
        return sorted(table["symbol"])
    universe = settings.universe
    return sorted(filter_universe(table, universe.min_market_cap_cr, universe.max_instruments,
                                  universe.require_complete_history)["symbol"])


def _bars_in_range(store: BarStore, symbols: list[str], start: date = START, end: date = END) -> int:
    total = 0
    for symbol in symbols:
        days = store.read(symbol, "1d")["ts"].dt.date
        total += int(((days >= start) & (days <= end)).sum())
    return total


def ours(symbols: list[str], start: date = START, end: date = END, data_dir: Path | None = None) -> float:
    settings = load_settings()
    began = time.perf_counter()
    asyncio.run(run_backtest(settings, start, end, symbols, data_dir=data_dir))
    return time.perf_counter() - began


def scale() -> None:
    """Ours alone on ~500 symbols x 6 years (the NIFTY 500 bars of ../shared, when present), in a child process
    that reports its own peak RSS (the kernel's high-water mark of its memory since it started the interpreter: the
    parent's memory, which a fork shares until exec, does not count)."""
    if not NIFTY500.exists():
        print(f"500-symbol run skipped: {NIFTY500} not found (it lives outside the repository)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        symbols = write_data_dir(Path(tmp))
        bars = _bars_in_range(BarStore(Path(tmp) / "bars"), symbols, *SCALE_RANGE)
        child = subprocess.run([sys.executable, __file__, "--scale-child", tmp], check=True, capture_output=True,
                               text=True)
    seconds, rss_kb = child.stdout.split()[-2:]
    rss_mb, seconds = int(rss_kb) / 1024, float(seconds)
    verdict = "OK" if rss_mb < TARGET_RSS_MB else "MISSED"
    print(f"autotrader, {len(symbols)} symbols, {SCALE_RANGE[0]} .. {SCALE_RANGE[1]} ({bars:,} daily bars): "
          f"{seconds:.1f} s, {bars / seconds:,.0f} bars/s; peak RSS {rss_mb:,.0f} MB vs target {TARGET_RSS_MB} MB "
          f"-> {verdict}")


def _scale_child(data_dir: Path) -> None:
    logging.disable(logging.CRITICAL)
    symbols = sorted(load_instrument_table(data_dir)["symbol"])
    print(ours(symbols, *SCALE_RANGE, data_dir=data_dir), _peak_rss_kb())


def _peak_rss_kb() -> int:
    """This process's peak RSS (VmHWM; getrusage where /proc is missing, which counts a fork's shared pages)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))


def backtrader_seconds(store: BarStore, symbols: list[str], runonce: bool) -> float:
    import backtrader as bt

    class PullbackBracket(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.fast = {d: bt.indicators.SMA(d.close, period=9) for d in self.datas}
            self.slow = {d: bt.indicators.SMA(d.close, period=SLOW_SMA) for d in self.datas}
            self.swing = {d: bt.indicators.Lowest(d.low, period=10) for d in self.datas}

        def next(self) -> None:
            for data in self.datas:
                if self.getposition(data).size or len(data) < SLOW_SMA:
                    continue
                close, fast = data.close[0], self.fast[data][0]
                if not (close > self.slow[data][0] and data.low[0] <= fast * 1.01 and close > fast
                        and close > data.open[0]):
                    continue
                stop = self.swing[data][0]
                if stop >= close:
                    continue
                size = int(self.broker.getvalue() * 0.01 / (close - stop))
                if size > 0:
                    self.buy_bracket(data=data, size=size, exectype=bt.Order.Market, stopprice=stop,
                                     limitprice=close + 2 * (close - stop))

    began = time.perf_counter()
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    cerebro.broker.setcash(1_000_000.0)
    for symbol in symbols:
        frame = store.read(symbol, "1d")
        frame = frame[(frame["ts"].dt.date >= date(2020, 1, 1)) & (frame["ts"].dt.date <= END)].copy()
        if len(frame) < SLOW_SMA:  # listed lately (2 of --all-symbols, 19 bars each): it could never trade
            continue
        frame.index = pd.DatetimeIndex(frame["ts"].dt.tz_localize(None))
        cerebro.adddata(bt.feeds.PandasData(dataname=frame[["open", "high", "low", "close", "volume"]],
                                            fromdate=pd.Timestamp(START).to_pydatetime()), name=symbol)
    cerebro.addstrategy(PullbackBracket)
    cerebro.run()
    return time.perf_counter() - began


def main() -> None:
    if "--scale-child" in sys.argv:
        _scale_child(Path(sys.argv[sys.argv.index("--scale-child") + 1]))
        return
    logging.disable(logging.CRITICAL)  # the engine logs every kill switch and fill
    symbols = _symbols("--all-symbols" in sys.argv)
    store = BarStore(Path(load_settings().data_dir) / "bars")
    bars = _bars_in_range(store, symbols)
    print(f"{len(symbols)} symbols, {START} .. {END}: {bars:,} daily bars")
    runs: dict[str, list[float]] = {"autotrader": [], "backtrader (event-driven)": [], "backtrader (runonce)": []}
    for _ in range(RUNS):  # interleaved: a slow spell of the machine hits every contender
        runs["autotrader"].append(ours(symbols))
        runs["backtrader (event-driven)"].append(backtrader_seconds(store, symbols, False))
        runs["backtrader (runonce)"].append(backtrader_seconds(store, symbols, True))
    for label, seconds in runs.items():
        each = " ".join(f"{s:.2f}" for s in seconds)
        print(f"{label:>26}: {min(seconds):6.2f} s {bars / min(seconds):8,.0f} bars/s (runs {each})")
    ratio = min(runs["backtrader (runonce)"]) / min(runs["autotrader"])
    verdict = "OK" if ratio >= TARGET_RATIO else "MISSED"
    print(f"autotrader / backtrader runonce bars/s: ratio {ratio:.2f} vs target {TARGET_RATIO:.1f} -> {verdict}")
    scale()


if __name__ == "__main__":
    main()
