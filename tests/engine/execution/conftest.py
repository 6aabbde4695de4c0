from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.brokers.paper import PaperBroker
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.clock import SteppedClock
from engine.execution import OrderManager, RetryPolicy
from engine.models import IST, Instrument
from engine.storage.db import init_db

TRADING_DAY = date(2024, 6, 4)
CLIENT_TIMEOUT = 0.3  # seconds; the sandbox's "timeout after accept" sleeps past it
FAST_RETRY = RetryPolicy(attempts=4, backoff_seconds=0.01, max_backoff_seconds=0.05)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2024, 6, 4, 15, 10, tzinfo=IST))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = init_db(f"sqlite:///{tmp_path / 'journal.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def instrument() -> Instrument:
    return Instrument(instrument_key="NSE_EQ|INE002A01018", symbol="RELIANCE", isin="INE002A01018", tick_size=0.05)


@pytest.fixture
def sandbox(clock: SteppedClock) -> Iterator[KiteSandbox]:
    with KiteSandbox(clock=clock, timeout_fault_seconds=CLIENT_TIMEOUT + 0.3) as server:
        yield server


def kite_broker(sandbox: KiteSandbox, clock: SteppedClock, instrument: Instrument) -> ZerodhaBroker:
    return ZerodhaBroker(sandbox.config(timeout=CLIENT_TIMEOUT), clock, instruments=[instrument])


@pytest.fixture
async def kite(sandbox: KiteSandbox, clock: SteppedClock, instrument: Instrument) -> AsyncIterator[ZerodhaBroker]:
    broker = kite_broker(sandbox, clock, instrument)
    yield broker
    await broker.close()


@pytest.fixture
def kite_manager(kite: ZerodhaBroker, db: Engine, clock: SteppedClock) -> OrderManager:
    return OrderManager(kite, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)


@pytest.fixture
def paper(clock: SteppedClock) -> PaperBroker:
    return PaperBroker(clock, slippage_bps=10.0)


@pytest.fixture
def paper_manager(paper: PaperBroker, db: Engine, clock: SteppedClock) -> OrderManager:
    return OrderManager(paper, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)


def open_position(db: Engine, instrument: Instrument, quantity: int, *, exit_id: str | None = None,
                  client_order_id: str = "entry") -> int:
    """A positions row as the portfolio writes it after an entry fills."""
    from engine.storage.db import session_scope
    from engine.storage.tables import PositionRow

    with session_scope(db) as session:
        row = PositionRow(instrument_key=instrument.instrument_key, symbol=instrument.symbol, quantity=quantity,
                          average_price=100.0, stop=95.0, target=110.0,
                          opened_at=datetime(2024, 6, 4, 9, 40, tzinfo=IST), entry_client_order_id=client_order_id,
                          exit_id=exit_id)
        session.add(row)
        session.flush()
        assert row.id is not None
        return row.id
