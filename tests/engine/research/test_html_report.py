"""The HTML report: figures with the series, axes and markers a trader reads; one self-contained file."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from engine.models import IST
from engine.research.html_report import equity_figure, monthly_heatmap, trades_on_price, write_html_report

CAPITAL = 100_000.0
EQUITY = [(date(2024, 5, 30), 101_000.0), (date(2024, 5, 31), 99_000.0), (date(2024, 6, 3), 103_000.0)]
TRADES = [{"symbol": "INFY", "quantity": 10, "entry_time": datetime(2024, 5, 30, 15, 15, tzinfo=IST),
           "entry_price": 1400.0, "exit_time": datetime(2024, 6, 3, 10, 0, tzinfo=IST), "exit_price": 1500.0,
           "net_pnl": 990.0, "exit_reason": "target (GTT)"}]
BARS = pd.DataFrame({"ts": pd.to_datetime(["2024-05-30", "2024-05-31", "2024-06-03"]),
                     "open": [1390.0, 1410.0, 1450.0], "high": [1420.0, 1460.0, 1510.0],
                     "low": [1380.0, 1400.0, 1440.0], "close": [1410.0, 1450.0, 1500.0]})


def test_equity_figure_scales_the_benchmark_to_the_capital_and_draws_the_drawdown() -> None:
    closes = {date(2024, 5, 29): 200.0, date(2024, 5, 30): 210.0, date(2024, 5, 31): 190.0, date(2024, 6, 3): 220.0}
    figure = equity_figure(CAPITAL, EQUITY, closes)
    strategy, benchmark, drawdown = figure.data
    assert list(strategy.y) == [101_000.0, 99_000.0, 103_000.0]
    assert list(benchmark.y) == [105_000.0, 95_000.0, 110_000.0]
    assert list(drawdown.y)[1] == -100 * 2_000 / 101_000
    assert figure.layout.yaxis.title.text == "equity (₹)" and figure.layout.yaxis2.title.text == "drawdown (%)"


def test_monthly_heatmap_has_a_cell_per_month() -> None:
    figure = monthly_heatmap(CAPITAL, EQUITY)
    (heatmap,) = figure.data
    assert list(heatmap.y) == ["2024"]
    row = list(heatmap.z[0])
    assert abs(row[4] + 1.0) < 1e-9 and abs(row[5] - 100 * (103 / 99 - 1)) < 1e-9 and row[0] is None


def test_trade_markers_sit_at_the_fill_prices() -> None:
    figure = trades_on_price("INFY", BARS, TRADES)
    _candles, entries, exits = figure.data
    assert list(entries.y) == [1400.0] and entries.marker.symbol == "triangle-up"
    assert list(exits.y) == [1500.0] and list(exits.text) == ["target (GTT)"]


def test_the_report_is_one_self_contained_file(tmp_path: Path) -> None:
    path = write_html_report(tmp_path / "report.html", title="June <test>", capital=CAPITAL, equity=EQUITY,
                             trades=TRADES, summary={"net_pnl": 990.0, "sharpe": 1.2}, symbol="INFY", bars=BARS)
    text = path.read_text(encoding="utf-8")
    assert "June &lt;test&gt;" in text and "target (GTT)" in text
    assert not re.search(r"<script[^>]+src=", text)  # no CDN: opens offline
    assert text.count("plotly.js v") <= 2  # plotly's bundle inlined once (its banner names the version)
    assert text.count("Plotly.newPlot") == 3
