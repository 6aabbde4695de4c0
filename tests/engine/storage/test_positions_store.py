"""The positions-and-trades repository: the SQL store and the in-memory store answer every case the same."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlmodel import select

from engine.models import IST, PositionStatus, Side, Trade
from engine.portfolio.times import row_as_json
from engine.storage import init_db, session_scope
from engine.storage.memory import Database
from engine.storage.positions import (
    MemoryPositionStore,
    PositionRecord,
    PositionStore,
    SqlPositionStore,
    TradeRecord,
    position_store,
)
from engine.storage.tables import PositionRow, TradeRow

DAY, NEXT = date(2024, 6, 4), date(2024, 6, 5)


def _position(key: str = "NSE_EQ|A", entry: str = "ENTRY-A") -> PositionRecord:
    return PositionRecord(instrument_key=key, symbol=key[-1], quantity=10, average_price=100.0, stop=95.0,
                          target=110.0, opened_at=datetime(2024, 6, 4, 9, 40, 12, 345000, tzinfo=IST),
                          entry_client_order_id=entry, initial_risk=50.0)


def _trade(key: str, quantity: int, exit_price: float, exit_time: datetime, net: float) -> Trade:
    return Trade(key, key[-1], Side.BUY, quantity, datetime(2024, 6, 4, 9, 40, tzinfo=IST), 100.0, exit_time,
                 exit_price, quantity * (exit_price - 100.0), 1.5, net, "stop")


@pytest.fixture
def store(database: Database) -> PositionStore:
    return position_store(database)



def test_a_position_is_added_updated_and_read_back_in_ist(store: PositionStore) -> None:
    first = store.add(_position())
    second = store.add(_position("NSE_EQ|B", "ENTRY-B"))
    assert first != second and store.open_ids() == {first, second}
    store.update(first, exit_id="GTT-1", stop=96.0, quantity=8, initial_risk=32.0)
    store.update(999, exit_id="GTT-X")  # an unknown id changes nothing
    [a, b] = store.open_positions()
    assert (a.id, a.exit_id, a.stop, a.quantity, a.initial_risk, a.status) == (first, "GTT-1", 96.0, 8, 32.0,
                                                                                PositionStatus.OPEN)
    assert a.opened_at == _position().opened_at and a.opened_at.tzinfo == IST and b.id == second
    assert store.entry_order_ids() == {"ENTRY-A", "ENTRY-B"}
    with pytest.raises(ValueError, match="cannot be updated"):
        store.update(first, status="CLOSED")


def test_closing_and_reducing_log_trades_and_the_days_realised_pnl(store: PositionStore) -> None:
    a, b = store.add(_position()), store.add(_position("NSE_EQ|B", "ENTRY-B"))
    late, early = datetime(2024, 6, 4, 14, 0, tzinfo=IST), datetime(2024, 6, 4, 5, 0, tzinfo=UTC)  # 10:30 IST
    store.reduce(a, 6, 30.0, _trade("NSE_EQ|A", 4, 105.0, late, 18.5), DAY)
    store.close(b, early, _trade("NSE_EQ|B", 10, 94.0, early, -61.5), DAY)
    assert store.open_ids() == {a} and [p.quantity for p in store.open_positions()] == [6]
    store.close(a, datetime(2024, 6, 5, 10, 0, tzinfo=IST),
                _trade("NSE_EQ|A", 6, 110.0, datetime(2024, 6, 5, 10, 0, tzinfo=IST), 58.25), NEXT)
    assert store.open_positions() == [] and store.open_ids() == set()
    assert store.entry_order_ids() == {"ENTRY-A", "ENTRY-B"}  # closed ones too
    today = store.trades_of(DAY)
    assert [(t.symbol, t.quantity, t.net_pnl) for t in today] == [("B", 10, -61.5), ("A", 4, 18.5)]  # by exit time
    assert today[0].exit_time == early and today[0].exit_time.tzinfo == IST
    assert store.trades_of(date(2024, 6, 3)) == []
    assert (store.realised_net(DAY), store.realised_net(NEXT)) == (-43.0, 58.25)
    assert (store.realised_net_before(DAY), store.realised_net_before(NEXT), store.realised_net_before(date(2024, 7, 1))
            ) == (0.0, -43.0, 15.25)
    records = store.trade_records()
    assert [(r.trade.symbol, r.trading_day, r.position_id, r.initial_risk) for r in records] == [
        ("B", DAY, b, 50.0), ("A", DAY, a, 30.0), ("A", NEXT, a, 30.0)]  # the position's risk as it is now


def test_a_trade_record_reads_as_the_backtest_report_reads_the_trades_table() -> None:
    """`TradeRecord.as_json` is the backtest report's trade: the columns of `trades` but its ids, and the risk."""
    engine = init_db("sqlite://")
    store = SqlPositionStore(engine)
    position_id = store.add(_position())
    exit_time = datetime(2024, 6, 4, 14, 5, 1, 250000, tzinfo=IST)
    store.close(position_id, exit_time, _trade("NSE_EQ|A", 10, 104.35, exit_time, 41.2), DAY)
    [record] = store.trade_records()
    with session_scope(engine) as session:
        expected = row_as_json(session.exec(select(TradeRow)).one())
        assert session.exec(select(PositionRow)).one().status == PositionStatus.CLOSED.value
    engine.dispose()
    del expected["id"], expected["position_id"]
    assert record.as_json() == {**expected, "initial_risk": 50.0}
    memory = MemoryPositionStore()
    memory.close(memory.add(_position()), exit_time, _trade("NSE_EQ|A", 10, 104.35, exit_time, 41.2), DAY)
    assert [r.as_json() for r in memory.trade_records()] == [record.as_json()]
    assert TradeRecord(record.trade, DAY, None, None).as_json()["initial_risk"] is None


def test_a_store_within_a_callers_transaction_commits_with_it() -> None:
    engine = init_db("sqlite://")
    position_id = SqlPositionStore(engine).add(_position())
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        SqlPositionStore.within(session).update(position_id, quantity=20)
        raise RuntimeError("the caller's other write failed")
    assert [p.quantity for p in SqlPositionStore(engine).open_positions()] == [10]  # rolled back with it
    with session_scope(engine) as session:
        SqlPositionStore.within(session).update(position_id, quantity=20)
    assert [p.quantity for p in SqlPositionStore(engine).open_positions()] == [20]
    engine.dispose()


def test_positions_after_an_id_and_trade_records_of_a_day_or_after_an_id_carry_their_ids(
    store: PositionStore,
) -> None:
    """The readers' reads: every position (closed ones too) after a cursor, and trades numbered as `trades.id`."""
    a, b, c = store.add(_position()), store.add(_position("NSE_EQ|B", "ENTRY-B")), store.add(
        _position("NSE_EQ|C", "ENTRY-C"))
    late, early = datetime(2024, 6, 4, 14, 0, tzinfo=IST), datetime(2024, 6, 4, 10, 30, tzinfo=IST)
    store.reduce(a, 6, 30.0, _trade("NSE_EQ|A", 4, 105.0, late, 18.5), DAY)
    store.close(b, early, _trade("NSE_EQ|B", 10, 94.0, early, -61.5), DAY)
    next_day = datetime(2024, 6, 5, 10, 0, tzinfo=IST)
    store.close(a, next_day, _trade("NSE_EQ|A", 6, 110.0, next_day, 58.25), NEXT)
    assert [(p.id, p.symbol, p.status) for p in store.positions()] == [
        (a, "A", PositionStatus.CLOSED), (b, "B", PositionStatus.CLOSED), (c, "C", PositionStatus.OPEN)]
    assert [p.id for p in store.positions(after_id=a)] == [b, c] and store.positions(after_id=c) == []
    assert store.positions()[1].closed_at == early and store.positions()[1].closed_at.tzinfo == IST
    today = store.trade_records_of(DAY)
    assert [(r.id, r.trade.symbol, r.position_id, r.initial_risk, r.trading_day) for r in today] == [
        (2, "B", b, 50.0, DAY), (1, "A", a, 30.0, DAY)]  # by exit time; ids in the order logged
    assert today[0].trade.exit_time.tzinfo == IST and store.trade_records_of(date(2024, 6, 3)) == []
    assert [(r.id, r.trading_day) for r in store.trade_records_after(1)] == [(2, DAY), (3, NEXT)]
    assert store.trade_records_after(3) == [] and [r.id for r in store.trade_records()] == [2, 1, 3]
