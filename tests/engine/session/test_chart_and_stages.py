from __future__ import annotations

import struct
import zlib
from datetime import date
from pathlib import Path

import pytest

from engine.clock import LiveClock
from engine.session.chart import pnl_chart_markdown, pnl_chart_png
from engine.session.stages import open_trading_day, parse_day, record_stage, stage_log, stage_state


def _pixels(png: bytes) -> tuple[int, int, bytes]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    idat_length = struct.unpack(">I", png[33:37])[0]
    return width, height, zlib.decompress(png[41 : 41 + idat_length])


def test_pnl_chart_is_a_valid_png_with_green_and_red_bars() -> None:
    width, height, raw = _pixels(pnl_chart_png([1000.0, -3000.0, 500.0]))
    assert (width, height) == (480, 200)
    assert len(raw) == height * (1 + width * 3)
    assert bytes((46, 160, 67)) in raw and bytes((207, 34, 46)) in raw  # profit then loss


def test_pnl_chart_of_no_trades_is_still_an_image() -> None:
    width, height, _ = _pixels(pnl_chart_png([]))
    assert (width, height) == (480, 200)
    assert pnl_chart_markdown([], []) == "_No closed trades._"


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
    record_stage(context.db, context.day, "pre_open", "RUNNING", LiveClock(), {"universe": 12})
    record_stage(context.db, context.day, "pre_open", "COMPLETED", LiveClock(), {"metadata": "m.parquet"})
    reopened = open_trading_day("2024-06-04", LiveClock(), database_url=url)
    assert stage_state(reopened.db, reopened.day, "pre_open") == (
        "COMPLETED", {"universe": 12, "metadata": "m.parquet"}
    )
    assert set(stage_log(reopened.db, reopened.day)) == {"pre_open"}


def test_a_closed_day_says_why() -> None:
    holiday = open_trading_day("2024-11-20", LiveClock(), database_url="sqlite://")
    assert holiday.skip_reason == "2024-11-20 is an NSE holiday: Assembly Elections in Maharashtra"
    weekend = open_trading_day("2024-06-09", LiveClock(), database_url="sqlite://")
    assert weekend.skip_reason == "2024-06-09 is not an NSE trading day (Sunday)"
