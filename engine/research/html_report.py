"""A self-contained HTML backtest report (plotly, its JavaScript inlined: it opens offline): equity and
drawdown against the benchmark, a monthly-returns heatmap, trade markers on price for one symbol,
and the trade table. The figure builders return plotly figures, so flows can publish the same ones."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.research.statistics import drawdowns_pct, monthly_returns

if TYPE_CHECKING:
    import pandas as pd
    from plotly.graph_objects import Figure

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def equity_figure(capital: float, equity: Sequence[tuple[date, float]],
                  benchmark_closes: Mapping[date, float] | None = None) -> Figure:
    """Equity (and the benchmark scaled to the same capital) above, drawdown in % below."""
    from plotly.subplots import make_subplots

    days = [day for day, _ in equity]
    values = [value for _, value in equity]
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    figure.add_scatter(x=days, y=values, name="strategy", line={"color": "#1f77b4"}, row=1, col=1)
    if benchmark_closes and days:
        before = [day for day in benchmark_closes if day < days[0]]
        if before:
            base = benchmark_closes[max(before)]
            shown = [day for day in days if day in benchmark_closes]
            figure.add_scatter(x=shown, y=[capital * benchmark_closes[day] / base for day in shown],
                               name="NIFTY 50 buy-and-hold", line={"color": "#7f7f7f", "dash": "dot"}, row=1, col=1)
    drawdown = [-fall for fall in drawdowns_pct(capital, values)]
    figure.add_scatter(x=days, y=drawdown, name="drawdown", fill="tozeroy", line={"color": "#d62728"}, row=2, col=1)
    figure.update_yaxes(title_text="equity (₹)", row=1, col=1)
    figure.update_yaxes(title_text="drawdown (%)", row=2, col=1)
    figure.update_xaxes(title_text="date", row=2, col=1)
    figure.update_layout(title="Equity and drawdown", height=560, legend={"orientation": "h"})
    return figure


def monthly_heatmap(capital: float, equity: Sequence[tuple[date, float]]) -> Figure:
    """Years down, months across, each cell that month's return in %."""
    import plotly.graph_objects as go

    returns = monthly_returns(capital, equity)
    years = sorted({int(month[:4]) for month in returns})
    grid = [[returns.get(f"{year}-{month:02d}") for month in range(1, 13)] for year in years]
    text = [[("" if cell is None else f"{cell:.1f}") for cell in row] for row in grid]
    figure = go.Figure(go.Heatmap(z=grid, x=list(MONTHS), y=[str(year) for year in years], text=text,
                                  texttemplate="%{text}", colorscale="RdYlGn", zmid=0,
                                  colorbar={"title": {"text": "%"}}))
    figure.update_layout(title="Monthly returns (%)", xaxis_title="month", yaxis_title="year",
                         height=220 + 45 * len(years))
    return figure


def trades_on_price(symbol: str, bars: pd.DataFrame, trades: Sequence[Mapping[str, Any]]) -> Figure:
    """Daily candles of `symbol` (columns ts, open, high, low, close) with its entries and exits."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Candlestick(x=bars["ts"], open=bars["open"], high=bars["high"], low=bars["low"],
                                      close=bars["close"], name=symbol))
    mine = [t for t in trades if t["symbol"] == symbol]
    figure.add_scatter(x=[t["entry_time"] for t in mine], y=[t["entry_price"] for t in mine], mode="markers",
                       name="entry", marker={"symbol": "triangle-up", "size": 11, "color": "#2ca02c"})
    figure.add_scatter(x=[t["exit_time"] for t in mine], y=[t["exit_price"] for t in mine], mode="markers",
                       name="exit", marker={"symbol": "triangle-down", "size": 11, "color": "#d62728"},
                       text=[t["exit_reason"] for t in mine], hovertemplate="%{y} %{text}")
    figure.update_layout(title=f"{symbol}: trades on price", xaxis_title="date", yaxis_title="price (₹)",
                         xaxis_rangeslider_visible=False, height=480)
    return figure


TRADE_COLUMNS = ("symbol", "quantity", "entry_time", "entry_price", "exit_time", "exit_price", "net_pnl",
                 "exit_reason")


def _trade_table(trades: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in TRADE_COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(trade.get(column, '')))}</td>" for column in TRADE_COLUMNS) + "</tr>"
        for trade in trades
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _summary_table(summary: Mapping[str, Any]) -> str:
    shown = {key: value for key, value in summary.items() if not isinstance(value, dict | list)}
    rows = "".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(str(value))}</td></tr>"
                   for key, value in shown.items())
    return f"<table class='summary'>{rows}</table>"


def write_html_report(
    path: Path,
    *,
    title: str,
    capital: float,
    equity: Sequence[tuple[date, float]],
    trades: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    benchmark_closes: Mapping[date, float] | None = None,
    symbol: str | None = None,
    bars: pd.DataFrame | None = None,
) -> Path:
    """Write the report to `path`: one file, plotly's JavaScript inlined once, no network needed."""
    figures = [equity_figure(capital, equity, benchmark_closes), monthly_heatmap(capital, equity)]
    if symbol is not None and bars is not None:
        figures.append(trades_on_price(symbol, bars, trades))
    parts = [figure.to_html(full_html=False, include_plotlyjs=(index == 0)) for index, figure in enumerate(figures)]
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}")
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<h2>Summary</h2>{_summary_table(summary)}{''.join(parts)}"
        f"<h2>Trades ({len(trades)})</h2>{_trade_table(trades)}</body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path
