from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

import pytest

from engine.clock import LiveClock
from engine.models import StageStatus
from engine.session.chart import (
    HEIGHT,
    WIDTH,
    ChartTrade,
    chart_trades,
    figure_png,
    pnl_chart_markdown,
    pnl_chart_png,
    pnl_figure,
)
from engine.session.stages import open_trading_day, parse_day, record_stage, stage_log, stage_state
from tests.conftest import PROJECT_ROOT

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.lines import Line2D

IST = ZoneInfo("Asia/Kolkata")
DAY = date(2024, 6, 4)
OPEN, CLOSE = datetime(2024, 6, 4, 9, 15, tzinfo=IST), datetime(2024, 6, 4, 15, 30, tzinfo=IST)
REPORT_TRADES = [  # as the daily report gives them: ISO times in IST
    {"symbol": "TCS", "entry_time": "2024-06-04T09:40:00+05:30", "exit_time": "2024-06-04T11:05:00+05:30",
     "net_pnl": 1000.0},
    {"symbol": "INFY", "entry_time": "2024-06-04T10:10:00+05:30", "exit_time": "2024-06-04T13:30:00+05:30",
     "net_pnl": -3000.0},
    {"symbol": "RELIANCE", "entry_time": "2024-06-04T12:00:00+05:30", "exit_time": "2024-06-04T15:20:00+05:30",
     "net_pnl": 500.0},
]


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        image.load()  # decodes every pixel: a truncated or corrupt file raises here
        return image.size


def _points(line: Line2D) -> list[tuple[Any, Any]]:
    return list(zip(cast("Sequence[Any]", line.get_xdata()), cast("Sequence[Any]", line.get_ydata()), strict=True))


def _ys(line: Line2D) -> list[Any]:
    return [y for _x, y in _points(line)]


def _markers(axes: Axes, marker: str) -> list[tuple[datetime, float]]:
    return sorted(point for line in axes.lines if line.get_marker() == marker for point in _points(line))


def test_report_trades_become_chart_trades_in_exit_order() -> None:
    trades = chart_trades(reversed(REPORT_TRADES))
    assert [t.symbol for t in trades] == ["TCS", "INFY", "RELIANCE"]
    assert trades[0] == ChartTrade("TCS", datetime(2024, 6, 4, 9, 40, tzinfo=IST),
                                   datetime(2024, 6, 4, 11, 5, tzinfo=IST), 1000.0)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("exit_time", "11:05", "trade 1 \\(TCS\\): exit_time '11:05' is not readable"),
    ("entry_time", "2024-06-04T09:40:00", "trade 1 \\(TCS\\): entry_time '2024-06-04T09:40:00' has no UTC offset"),
    ("net_pnl", None, "trade 1 \\(TCS\\): net_pnl None is not readable"),
])
def test_an_unreadable_trade_row_is_named_in_the_error(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        chart_trades([{**REPORT_TRADES[0], field: value}])


def test_pnl_figure_has_titles_axis_labels_a_zero_line_and_labelled_trade_markers() -> None:
    figure = pnl_figure(chart_trades(REPORT_TRADES), day=DAY, capital=1_000_000.0, start=OPEN, end=CLOSE)
    equity, pnl = figure.axes
    assert figure.get_suptitle() == "autotrader — 2024-06-04: 3 closed trades, realised net P&L −₹1,500.00"
    assert (equity.get_title(), equity.get_ylabel()) == ("Realised equity", "Equity (₹)")
    assert (pnl.get_title(), pnl.get_ylabel(), pnl.get_xlabel()) == (
        "Cumulative net P&L after charges", "Net P&L (₹)", "Time (IST)")
    assert any(_ys(line) == [0.0, 0.0] for line in pnl.lines), "no zero line"
    assert any(_ys(line) == [1_000_000.0, 1_000_000.0] for line in equity.lines), "no capital line"
    # ▲ where each trade opened, on the realised curve (INFY and RELIANCE open after TCS made 1000)
    assert _markers(pnl, "^") == [(datetime(2024, 6, 4, 9, 40, tzinfo=IST), 0.0),
                                  (datetime(2024, 6, 4, 10, 10, tzinfo=IST), 0.0),
                                  (datetime(2024, 6, 4, 12, 0, tzinfo=IST), 1000.0)]
    assert _markers(pnl, "v") == [(datetime(2024, 6, 4, 11, 5, tzinfo=IST), 1000.0),
                                  (datetime(2024, 6, 4, 13, 30, tzinfo=IST), -2000.0),
                                  (datetime(2024, 6, 4, 15, 20, tzinfo=IST), -1500.0)]
    labels = sorted(text.get_text() for text in pnl.texts)
    assert labels == ["INFY", "INFY", "RELIANCE", "RELIANCE", "TCS", "TCS"]
    curve = next(line for line in pnl.lines if line.get_label() == "net P&L")
    points = _points(curve)
    assert [y for _x, y in points] == [0.0, 1000.0, -2000.0, -1500.0, -1500.0]  # session open .. close
    assert (points[0][0], points[-1][0]) == (OPEN, CLOSE)
    assert _png_size(figure_png(figure)) == (WIDTH, HEIGHT) == (960, 540)


def test_positions_carried_in_from_an_earlier_day_enter_at_the_session_open_with_their_date() -> None:
    carried = [{**row, "entry_time": "2024-06-03T15:10:00+05:30"} for row in REPORT_TRADES[:2]]
    figure = pnl_figure(chart_trades(carried), day=DAY, capital=1_000_000.0, start=OPEN, end=CLOSE)
    _equity, pnl = figure.axes
    assert _markers(pnl, "^") == [(OPEN, 0.0), (OPEN, 0.0)]  # the day is drawn, not the night before it
    assert sorted(text.get_text() for text in pnl.texts) == ["INFY", "TCS", "TCS, INFY (in 03 Jun)"]


def test_a_day_without_trades_is_still_a_chart() -> None:
    figure = pnl_figure([], day=DAY, capital=500_000.0, start=OPEN, end=CLOSE)
    _equity, pnl = figure.axes
    assert [text.get_text() for text in pnl.texts] == ["No closed trades"]
    assert _markers(pnl, "^") == [] and _markers(pnl, "v") == []
    assert _png_size(pnl_chart_png([], day=DAY, capital=500_000.0)) == (WIDTH, HEIGHT)
    assert pnl_chart_markdown([], []) == "_No closed trades._"


def test_matplotlib_is_imported_only_when_a_chart_is_drawn() -> None:
    probe = "import sys, engine.session.chart, cli.main; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def test_markdown_chart_shows_the_cumulative_pnl() -> None:
    text = pnl_chart_markdown(["TCS", "INFY"], [100.0, -250.0])
    assert "| TCS | 100.00 |" in text and "| INFY | -150.00 |" in text


def test_parse_day_rejects_a_non_date_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="not an ISO date"):
        parse_day("04/06/2024", LiveClock())
    assert parse_day("2024-06-04", LiveClock()) == date(2024, 6, 4)


def test_stage_checkpoints_merge_and_survive_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    context = open_trading_day("2024-06-04", LiveClock(), database_url=url)
    assert context.skip_reason is None and context.session is not None
    record_stage(context.db, context.day, "pre_open", StageStatus.RUNNING, LiveClock(), {"universe": 12})
    record_stage(context.db, context.day, "pre_open", StageStatus.COMPLETED, LiveClock(), {"metadata": "m.parquet"})
    reopened = open_trading_day("2024-06-04", LiveClock(), database_url=url)
    assert stage_state(reopened.db, reopened.day, "pre_open") == (
        StageStatus.COMPLETED, {"universe": 12, "metadata": "m.parquet"}
    )
    assert set(stage_log(reopened.db, reopened.day)) == {"pre_open"}


def test_a_closed_day_says_why() -> None:
    holiday = open_trading_day("2024-11-20", LiveClock(), database_url="sqlite://")
    assert holiday.skip_reason == "2024-11-20 is an NSE holiday: Assembly Elections in Maharashtra"
    weekend = open_trading_day("2024-06-09", LiveClock(), database_url="sqlite://")
    assert weekend.skip_reason == "2024-06-09 is not an NSE trading day (Sunday)"
