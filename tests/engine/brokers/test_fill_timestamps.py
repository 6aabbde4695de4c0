"""A trade row without any timestamp takes the time it was received (the clock's), never datetime.min
(which later overflowed in the journal) and never an error that would repeat on every poll."""

from __future__ import annotations

from datetime import datetime

from engine.brokers.upstox.parse import fill_from_trade
from engine.brokers.zerodha.parse import fills_from_kite
from engine.models import IST

RECEIVED = datetime(2024, 6, 4, 10, 5, 30, tzinfo=IST)


def test_kite_trade_without_timestamps_takes_the_receive_time() -> None:
    row = {"trade_id": "T1", "order_id": "O1", "tradingsymbol": "INFY", "transaction_type": "BUY",
           "quantity": 5, "average_price": 1500.0, "fill_timestamp": None, "exchange_timestamp": None,
           "order_timestamp": None}
    (fill,) = fills_from_kite([row], lambda symbol: f"NSE:{symbol}", received_at=RECEIVED)
    assert fill.ts == RECEIVED


def test_kite_trade_with_a_timestamp_keeps_it() -> None:
    row = {"trade_id": "T1", "order_id": "O1", "tradingsymbol": "INFY", "transaction_type": "BUY",
           "quantity": 5, "average_price": 1500.0, "fill_timestamp": "2024-06-04 09:20:01"}
    (fill,) = fills_from_kite([row], lambda symbol: f"NSE:{symbol}", received_at=RECEIVED)
    assert fill.ts == datetime(2024, 6, 4, 9, 20, 1, tzinfo=IST)


def test_upstox_trade_without_timestamps_takes_the_receive_time() -> None:
    row = {"trade_id": "T1", "order_id": "O1", "instrument_token": "NSE_EQ|INE009A01021",
           "transaction_type": "BUY", "quantity": 5, "average_price": 1500.0, "exchange_timestamp": None,
           "order_timestamp": ""}
    assert fill_from_trade(row, received_at=RECEIVED).ts == RECEIVED
