"""The day's P&L chart, drawn with matplotlib (Agg, no display): realised equity and cumulative net P&L through the
day, with each trade's entry (▲) and exit (▼) marked and labelled with its symbol; and the same P&L as a text chart
for markdown.

matplotlib is imported inside the functions that draw, so importing this module (the engine, the CLI) costs nothing."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import accumulate
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH, HEIGHT, DPI = 960, 540, 100
PROFIT, LOSS, CURVE, ZERO = "#2ea043", "#cf222e", "#0969da", "#6e7781"


@dataclass(frozen=True)
class ChartTrade:
    """One closed trade as the chart draws it (tz-aware times)."""

    symbol: str
    entry_time: datetime
    exit_time: datetime
    net_pnl: float


def chart_trades(rows: Iterable[Mapping[str, Any]]) -> list[ChartTrade]:
    """The daily report's trade rows (ISO 8601 times) as chart trades, in exit order. A row whose time or net P&L
    cannot be read raises ValueError naming the row and the field."""
    trades = []
    for number, row in enumerate(rows, start=1):
        symbol = str(row.get("symbol") or "?")
        values: dict[str, Any] = {}
        for field in ("entry_time", "exit_time", "net_pnl"):
            raw: Any = row.get(field)
            try:
                values[field] = float(raw) if field == "net_pnl" else datetime.fromisoformat(str(raw))
            except (TypeError, ValueError):
                raise ValueError(f"trade {number} ({symbol}): {field} {raw!r} is not readable") from None
            if isinstance(values[field], datetime) and values[field].tzinfo is None:
                raise ValueError(f"trade {number} ({symbol}): {field} {raw!r} has no UTC offset")
        trades.append(ChartTrade(symbol, values["entry_time"], values["exit_time"], values["net_pnl"]))
    return sorted(trades, key=lambda trade: trade.exit_time)


def _rupees(value: float, decimals: int = 2) -> str:
    return f"{'−' if round(value, decimals) < 0 else ''}₹{abs(value):,.{decimals}f}"


def _realised_pnl_at(trades: Sequence[ChartTrade], when: datetime) -> float:
    return sum(trade.net_pnl for trade in trades if trade.exit_time <= when)


def _window(
    trades: Sequence[ChartTrade], start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime] | None:
    """The time span drawn: the session (`start`..`end`) widened to every exit; without a start, from the first
    entry. An entry before the span (a position carried in from an earlier day) is drawn at its start."""
    exits = [trade.exit_time for trade in trades]
    first = start or min((trade.entry_time for trade in trades), default=None)
    firsts = [*exits, first] if first is not None else exits
    lasts = [*exits, end] if end is not None else exits
    return (min(firsts), max(lasts)) if firsts and lasts else None


def _step_curve(trades: Sequence[ChartTrade], window: tuple[datetime, datetime]) -> tuple[list[datetime], list[float]]:
    """Times and realised cumulative net P&L: from the window's start, one step at each exit, held to its end."""
    first, last = window
    times = [first, *(trade.exit_time for trade in trades), last]
    values = [0.0, *accumulate(trade.net_pnl for trade in trades)]
    return times, [*values, values[-1]]


def _label_offsets(times: Sequence[datetime], window: tuple[datetime, datetime]) -> list[int]:
    """Labels of markers close in time get stacked (0, 1, 2, ... rows) instead of printed over each other."""
    close = (window[1] - window[0]) / 25
    ranks: list[int] = []
    previous: datetime | None = None
    for when in times:
        ranks.append(ranks[-1] + 1 if previous is not None and when - previous < close else 0)
        previous = when
    return ranks


def _mark_trades(axes: Axes, trades: Sequence[ChartTrade], window: tuple[datetime, datetime]) -> None:
    """Entries ▲ on the curve where each trade opened, exits ▼ (green profit, red loss); each labelled with its
    symbol, and an entry from before the window with its date."""
    first = window[0]
    entries = [(max(trade.entry_time, first), _realised_pnl_at(trades, max(trade.entry_time, first)))
               for trade in trades]
    exits = [(trade.exit_time, _realised_pnl_at(trades, trade.exit_time)) for trade in trades]
    axes.plot(*zip(*entries, strict=True), linestyle="none", marker="^", markersize=9, color=CURVE, label="entry ▲")
    for label, colour, won in (("exit ▼ (profit)", PROFIT, True), ("exit ▼ (loss)", LOSS, False)):
        points = [point for point, trade in zip(exits, trades, strict=True) if (trade.net_pnl >= 0) == won]
        if points:
            axes.plot(*zip(*points, strict=True), linestyle="none", marker="v", markersize=9, color=colour,
                      label=label)
    # One label per entry point: positions carried in from earlier days all sit at the window's start.
    entry_labels: dict[tuple[datetime, float, str], list[str]] = {}
    for trade, point in zip(trades, entries, strict=True):
        carried = f" (in {trade.entry_time:%d %b})" if trade.entry_time < first else ""
        entry_labels.setdefault((*point, carried), []).append(trade.symbol)
    keys = sorted(entry_labels)
    for (when, pnl, carried), row in zip(keys, _label_offsets([key[0] for key in keys], window), strict=True):
        axes.annotate(", ".join(entry_labels[(when, pnl, carried)]) + carried, (when, pnl), textcoords="offset points",
                      xytext=(0, 8 + 10 * row), ha="left" if carried else "center", fontsize=8)
    for trade, point, row in zip(trades, exits, _label_offsets([point[0] for point in exits], window), strict=True):
        axes.annotate(trade.symbol, point, textcoords="offset points", xytext=(0, -14 - 10 * row), ha="center",
                      fontsize=8)


def pnl_figure(
    trades: Sequence[ChartTrade],
    *,
    day: date,
    capital: float,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Figure:
    """The chart as a matplotlib Figure (WIDTH×HEIGHT pixels at DPI): realised equity on top, cumulative net P&L
    with a zero line and the trade markers below, over the session `start`..`end` (and any trade outside it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    trades = sorted(trades, key=lambda trade: trade.exit_time)
    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # renders off-screen; never a display
    equity_axes, pnl_axes = figure.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    total = sum(trade.net_pnl for trade in trades)
    figure.suptitle(f"autotrader — {day.isoformat()}: {len(trades)} closed trades, realised net P&L {_rupees(total)}")
    rupees = FuncFormatter(lambda value, _position: _rupees(value, decimals=0))

    window = _window(trades, start, end)
    equity_axes.set_title("Realised equity")
    equity_axes.set_ylabel("Equity (₹)")
    equity_axes.axhline(capital, color=ZERO, linestyle="--", linewidth=1, label=f"capital {_rupees(capital, 0)}")
    pnl_axes.set_title("Cumulative net P&L after charges")
    pnl_axes.set_ylabel("Net P&L (₹)")
    pnl_axes.set_xlabel("Time (IST)")
    pnl_axes.axhline(0.0, color=ZERO, linewidth=1, label="zero")
    for axes in (equity_axes, pnl_axes):
        axes.yaxis.set_major_formatter(rupees)
        axes.grid(True, alpha=0.3)
        axes.margins(y=0.25)  # room for the marker labels
    if window is not None:
        times, pnl = _step_curve(trades, window)
        equity_axes.step(times, [capital + value for value in pnl], where="post", color=CURVE, label="equity")
        pnl_axes.step(times, pnl, where="post", color=CURVE, label="net P&L")
        timezone = window[0].tzinfo
        locator = AutoDateLocator(tz=timezone)
        pnl_axes.xaxis.set_major_locator(locator)
        pnl_axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=timezone))
    if trades and window is not None:
        _mark_trades(pnl_axes, trades, window)
    else:
        pnl_axes.set_ylim(-100, 100)  # a flat zero line would otherwise get a degenerate scale
        pnl_axes.text(0.5, 0.75, "No closed trades", transform=pnl_axes.transAxes, ha="center", color=ZERO)
    for axes in (equity_axes, pnl_axes):  # outside the plot, so no label or marker hides under it
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return figure


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes at its own size."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()


def pnl_chart_png(
    trades: Sequence[ChartTrade],
    *,
    day: date,
    capital: float,
    start: datetime | None = None,
    end: datetime | None = None,
) -> bytes:
    """PNG (WIDTH×HEIGHT) of `pnl_figure`."""
    return figure_png(pnl_figure(trades, day=day, capital=capital, start=start, end=end))


def pnl_chart_markdown(labels: Sequence[str], net_pnls: Sequence[float], width: int = 30) -> str:
    """The cumulative P&L as a markdown table of text bars (█ profit, ▒ loss)."""
    if not net_pnls:
        return "_No closed trades._"
    cumulative = list(accumulate(net_pnls))
    scale = max(abs(v) for v in cumulative) or 1.0
    lines = ["| after | cumulative net P&L (₹) | |", "|---|---:|---|"]
    for label, value in zip(labels, cumulative, strict=True):
        bar = ("█" if value >= 0 else "▒") * max(1, round(abs(value) / scale * width))
        lines.append(f"| {label} | {value:,.2f} | {bar} |")
    return "\n".join(lines)
