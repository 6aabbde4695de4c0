"""The Kite sandbox's own contract: auth, version header, envelopes, days and persistence."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.clock import SteppedClock
from engine.execution import OrderManager, exit_request_for
from engine.models import IST, ExitStatus, Instrument, OrderIntent, Side
from engine.storage.db import init_db
from tests.engine.brokers.wire import request_json
from tests.engine.execution.conftest import open_position


def _get(sandbox: KiteSandbox, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    return request_json(sandbox.url + path, headers=headers)


def test_wire_contract_auth_header_and_envelopes(clock: SteppedClock) -> None:
    with KiteSandbox(clock=clock) as sandbox:
        auth = {"X-Kite-Version": "3", "Authorization": f"token {sandbox.api_key}:{sandbox.access_token}"}
        assert _get(sandbox, "/orders", auth) == (200, {"status": "success", "data": []})
        status, body = _get(sandbox, "/orders", {**auth, "Authorization": "token wrong:key"})
        assert (status, body["status"], body["error_type"]) == (403, "error", "TokenException")
        status, body = _get(sandbox, "/orders", {"Authorization": auth["Authorization"]})
        assert (status, body["error_type"]) == (400, "InputException")
        status, body = _get(sandbox, "/nowhere", auth)
        assert status == 404


async def test_book_survives_the_process_and_rolls_to_the_next_day(
    tmp_path: Path, clock: SteppedClock, instrument: Instrument
) -> None:
    state = tmp_path / "kite.json"
    db: Engine = init_db(f"sqlite:///{tmp_path / 'journal.db'}")
    day_one = datetime(2024, 6, 4, 15, 15, tzinfo=IST)
    clock.set(day_one)
    with KiteSandbox(clock=clock, state_path=state) as sandbox:
        broker = ZerodhaBroker(sandbox.config(), clock, instruments=[instrument])
        manager = OrderManager(broker, db, clock, trading_day=day_one.date())
        sandbox.set_last_price("RELIANCE", 2900.0)
        entry = await manager.submit(OrderIntent("AT240604EDAYONE00001", instrument, Side.BUY, 10))
        await manager.refresh(entry.client_order_id)
        open_position(db, instrument, 10, client_order_id=entry.client_order_id)  # as the portfolio does
        placed = await manager.place_exit(exit_request_for(instrument, 10, stop=2850.0, target=3000.0,
                                                           last_price=2900.0, tag="DAYONEEXIT"))
        await broker.close()
    clock.set(datetime(2024, 6, 5, 9, 20, tzinfo=IST))
    with KiteSandbox(clock=clock, state_path=state) as sandbox:
        broker = ZerodhaBroker(sandbox.config(), clock, instruments=[instrument])
        assert await broker.list_orders() == []  # Kite's order book is per day
        assert [(p.quantity, p.average_price) for p in await broker.positions()] == [(10, 2900.0)]
        assert [e.status for e in await broker.list_exits()] == [ExitStatus.ACTIVE]
        manager = OrderManager(broker, db, clock, trading_day=clock.today())
        assert (await manager.reconcile()).kinds() == []
        sandbox.set_last_price("RELIANCE", 2840.0)  # the carried holding may be sold by the GTT
        settled = await manager.sync_exits()
        assert [(e.exit_id, e.status, e.exit_price) for e in settled] == [
            (placed.exit_id, ExitStatus.TRIGGERED_STOP, 2840.0)]
        assert await broker.positions() == []
        await broker.close()
    db.dispose()


@pytest.mark.parametrize("url", ["sqlite:///var/autotrader.db", "sqlite://", "postgresql://u@h/db"])
def test_sandbox_state_lives_next_to_a_sqlite_database(url: str) -> None:
    from engine.brokers.factory import sandbox_state_path

    expected = Path("var/autotrader.kite-sandbox.json") if url.endswith("autotrader.db") else None
    assert sandbox_state_path(url) == expected


def test_positions_add_holdings_to_todays_net_positions() -> None:
    from engine.brokers.zerodha.parse import positions_from_kite
    from engine.models import Product

    holdings = [{"tradingsymbol": "INFY", "quantity": 5, "t1_quantity": 5, "average_price": 1400.0},
                {"tradingsymbol": "TCS", "quantity": 3, "t1_quantity": 0, "average_price": 3800.0}]
    net = {"net": [{"tradingsymbol": "INFY", "product": "CNC", "quantity": 10, "average_price": 1500.0},
                   {"tradingsymbol": "TCS", "product": "CNC", "quantity": -3, "average_price": 0.0},
                   {"tradingsymbol": "SBIN", "product": "MIS", "quantity": 50, "average_price": 800.0}]}
    positions = positions_from_kite(net, holdings, lambda symbol: f"NSE:{symbol}", Product.CNC)
    assert [(p.instrument_key, p.quantity, p.average_price) for p in positions] == [("NSE:INFY", 20, 1450.0)]
