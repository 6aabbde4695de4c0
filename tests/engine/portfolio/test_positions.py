from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import select

from engine.execution.reconcile import SoldByHand
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import PositionBook, exit_trigger
from engine.settings import ChargesSettings
from engine.storage import init_db, session_scope
from engine.storage.memory import MemoryDatabase
from engine.storage.tables import PositionRow, TradeRow
from tests.engine.strategy.support import RELIANCE, TCS, at

DAY = date(2024, 6, 4)


def book(db) -> PositionBook:  # type: ignore[no-untyped-def]
    return PositionBook(db, ChargeCalculator(ChargesSettings()), {i.instrument_key: i for i in (RELIANCE, TCS)})


def test_positions_live_in_the_database_and_survive_a_restart() -> None:
    db = init_db("sqlite://")
    first = book(db)
    position = first.open_position(RELIANCE, 100, 1000.0, 950.0, 1100.0, at(DAY, 15, 12), "ATENTRY1")
    assert position.initial_risk == 5000.0
    first.set_exit(position, "GTT-1")
    with pytest.raises(ValueError, match="already has an open position"):
        first.open_position(RELIANCE, 1, 1000.0, 950.0, 1100.0, at(DAY, 15, 13), "ATENTRY2")
    restarted = book(db)
    [loaded] = restarted.load()
    assert (loaded.id, loaded.quantity, loaded.exit_id) == (position.id, 100, "GTT-1")
    assert loaded.opened_at == at(DAY, 15, 12)
    assert restarted.holds(RELIANCE.instrument_key) and not restarted.holds(TCS.instrument_key)


def test_closing_logs_the_trade_with_gross_and_net_pnl() -> None:
    db = init_db("sqlite://")
    positions = book(db)
    position = positions.open_position(RELIANCE, 100, 1000.0, 950.0, 1100.0, at(DAY, 15, 12), "ATENTRY1")
    trade = positions.close(position, 1100.0, at(date(2024, 6, 5), 11, 0), "target (GTT)", date(2024, 6, 5))
    # June 2024 rates, sold the next day: STT 210 + NSE 0.00322 % 6.762 + SEBI 0.21 + stamp 15 + DP 13
    # + GST 18 % of (6.762 + 0.21 + 13) 3.595 = 248.57
    assert (trade.gross_pnl, trade.charges, trade.net_pnl) == (10_000.0, 248.57, 9751.43)
    assert not positions.open
    with session_scope(db) as session:
        row = session.exec(select(PositionRow)).one()
        trade_row = session.exec(select(TradeRow)).one()
    assert row.status == "CLOSED"
    assert (trade_row.exit_reason, trade_row.trading_day, trade_row.position_id) == ("target (GTT)", date(2024, 6, 5),
                                                                                     position.id)
    assert [t.net_pnl for t in positions.trades_of(date(2024, 6, 5))] == [9751.43]
    assert book(db).load() == []


def test_exit_trigger_on_stop_and_target() -> None:
    db = init_db("sqlite://")
    position = book(db).open_position(RELIANCE, 1, 100.0, 95.0, 110.0, at(DAY, 15, 12), "X")
    assert [exit_trigger(position, p) for p in (95.0, 94.0, 100.0, 109.95, 110.0)] == [
        "stop", "stop", None, None, "target"]


def test_reducing_books_the_part_sold_and_keeps_the_rest_open() -> None:
    db = init_db("sqlite://")
    positions = book(db)
    position = positions.open_position(RELIANCE, 100, 1000.0, 950.0, 1100.0, at(DAY, 15, 12), "ATENTRY1")
    with pytest.raises(ValueError, match=r"a reduction sells 1\.\.99, got 100"):
        positions.reduce(position, 100, 940.0, at(DAY, 15, 20), "stop (GTT)", DAY)
    trade = positions.reduce(position, 40, 940.0, at(DAY, 15, 20), "stop (GTT)", DAY)
    assert (trade.quantity, trade.exit_price, trade.gross_pnl) == (40, 940.0, -2400.0)
    assert (position.quantity, position.initial_risk) == (60, 3000.0)  # 5000 for 100 shares, 60 left
    assert positions.holds(RELIANCE.instrument_key)
    [loaded] = book(db).load()  # written through: a restart sees the rest only
    assert (loaded.quantity, loaded.initial_risk) == (60, 3000.0)
    rest = positions.close(position, 930.0, at(DAY, 15, 25), "stop", DAY)
    assert [t.quantity for t in positions.trades_of(DAY)] == [40, 60] and rest.quantity == 60


@pytest.mark.parametrize("database", ["sql", "memory"])
def test_sales_outside_autotrader_close_or_reduce_with_a_trade_at_the_best_known_price(database: str) -> None:
    db = init_db("sqlite://") if database == "sql" else MemoryDatabase()
    positions = book(db)
    reliance = positions.open_position(RELIANCE, 100, 1000.0, 950.0, 1100.0, at(DAY, 9, 40), "ATENTRY1")
    tcs = positions.open_position(TCS, 10, 3000.0, 2900.0, 3200.0, at(DAY, 9, 45), "ATENTRY2")
    positions.mark(tcs, 3050.0)
    sales = [SoldByHand(reliance.id, RELIANCE.instrument_key, 60, 1010.0),  # 40 sold at the broker's 1010
             SoldByHand(tcs.id, TCS.instrument_key, 0, None)]  # all of it, at a price the broker does not list
    trades = positions.apply_sold_by_hand(sales, at(DAY, 11, 0), DAY)
    assert [(t.symbol, t.quantity, t.exit_price, t.exit_reason) for t in trades] == [
        (RELIANCE.symbol, 40, 1010.0, "closed_by_hand"), (TCS.symbol, 10, 3050.0, "closed_by_hand")]  # its last mark
    assert positions.apply_sold_by_hand(sales, at(DAY, 11, 5), DAY) == []  # booked once
    assert list(positions.open) == [RELIANCE.instrument_key] and reliance.quantity == 60
    [loaded] = book(db).load()
    assert (loaded.quantity, loaded.initial_risk) == (60, 3000.0)
    [rest] = positions.apply_sold_by_hand([SoldByHand(reliance.id, RELIANCE.instrument_key, 0, None)],
                                          at(DAY, 12, 0), DAY)
    assert (rest.quantity, rest.exit_price, rest.gross_pnl) == (60, 1000.0, 0.0)  # no mark: its average price
    assert [t.net_pnl for t in positions.trades_of(DAY)] == [t.net_pnl for t in [*trades, rest]]
    assert positions.open == {} and book(db).load() == []
