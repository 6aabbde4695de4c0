"""The three simulated venues (paper, the Kite sandbox, the Upstox sandbox) report the same trades
and open positions for the same ticks, because all three fill in one simulated exchange.

The fast test drives the three brokers directly with one replayed day of the shipped 5-minute bars
(no Prefect); the e2e test runs `autotrader demo --json` once per venue."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from engine.brokers.base import Broker
from engine.brokers.factory import make_broker
from engine.clock import SteppedClock
from engine.execution import OrderManager, exit_request_for, make_client_order_id
from engine.models import IST, Instrument, OrderIntent, OrderPurpose, OrderStatus, OrderType, Side, Tick
from engine.settings import Credentials, load_settings
from engine.storage import BarStore
from engine.storage.db import init_db
from tests.chaos.demos import DemoRun, outcome, run_demos

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DAY = date(2024, 6, 4)  # election results: big moves, stops and targets both hit
SYMBOLS = ["RELIANCE", "SBIN", "TATASTEEL", "INFY", "ONGC", "NTPC"]
VENUES = ["paper", "zerodha-sandbox", "upstox-sandbox"]


def _replayed_day() -> tuple[list[Instrument], list[Tick]]:
    """Ticks of the shipped 5-minute bars of `DAY` (open, then low/high in the bar's direction, then
    close, each inside the bar's real range), time-ordered across the instruments."""
    store = BarStore(PROJECT_ROOT / "data" / "bars")
    instruments, ticks = [], []
    for number, symbol in enumerate(SYMBOLS):
        instrument = Instrument(f"NSE_EQ|INE00000{number:04d}", symbol, f"INE00000{number:04d}", tick_size=0.05)
        instruments.append(instrument)
        frame = store.read(symbol, "5min")
        for row in frame[[ts.date() == DAY for ts in frame["ts"]]].itertuples():
            start = row.ts.astimezone(IST)
            rising = row.close >= row.open
            path = [row.open, row.low, row.high, row.close] if rising else [row.open, row.high, row.low, row.close]
            for step, price in enumerate(path):
                moment = start + timedelta(seconds=60 * step + 1 + number)
                ticks.append(Tick(instrument.instrument_key, round(float(price), 2), int(moment.timestamp() * 1000)))
    return instruments, sorted(ticks, key=lambda tick: tick.ltt_ms)


async def _trade_the_day(broker: Broker, db: Engine, clock: SteppedClock, instruments: list[Instrument],
                         ticks: list[Tick]) -> dict[str, Any]:
    """Buy each instrument at 09:30 (MARKET for half, a marketable LIMIT for the rest), protect it
    with a ±3% GTT exit and a 2% resting SL-M buy above; report what the venue did."""
    manager = OrderManager(broker, db, clock, trading_day=DAY)
    by_key = {i.instrument_key: i for i in instruments}
    entries: dict[str, str] = {}
    exits: dict[str, str] = {}
    stops: dict[str, str] = {}
    settled: dict[str, tuple[str, float | None]] = {}
    await broker.connect()
    try:
        for number, tick in enumerate(ticks):
            clock.set(tick.time)
            await broker.on_tick(tick)
            instrument = by_key[tick.instrument_key]
            symbol = instrument.symbol
            if tick.time.time() >= time(9, 30) and symbol not in entries:
                limit = {} if len(entries) % 2 else {"order_type": OrderType.LIMIT,
                                                     "price": instrument.round_price(tick.ltp * 1.01, "up")}
                intent = OrderIntent(make_client_order_id(DAY, symbol), instrument, Side.BUY, 10, **limit)  # type: ignore[arg-type]
                entries[symbol] = (await manager.submit(intent)).client_order_id
                stop = OrderIntent(make_client_order_id(DAY, f"{symbol}-slm"), instrument, Side.BUY, 5,
                                   order_type=OrderType.SL_M, trigger_price=instrument.round_price(tick.ltp * 1.02))
                stops[symbol] = (await manager.submit(stop)).client_order_id
            if symbol in entries and symbol not in exits:
                entry = await manager.refresh(entries[symbol])
                if entry.status is OrderStatus.FILLED:
                    request = exit_request_for(
                        instrument, 10, stop=entry.average_price * 0.97, target=entry.average_price * 1.03,
                        last_price=tick.ltp, tag=make_client_order_id(DAY, symbol, OrderPurpose.EXIT))
                    exits[symbol] = (await manager.place_exit(request)).exit_id
            if number % 6:  # sync about once a simulated minute (the HTTP venues are slower to ask)
                continue
            for exit_order in await manager.sync_exits():
                settled[by_key[exit_order.instrument_key].symbol] = (exit_order.status.value, exit_order.exit_price)
        orders = {}
        for symbol in entries:
            entry, resting = await manager.refresh(entries[symbol]), await manager.refresh(stops[symbol])
            orders[symbol] = (entry.status.value, entry.average_price, resting.status.value, resting.average_price)
        positions = sorted((by_key[p.instrument_key].symbol, p.quantity, round(p.average_price, 2))
                           for p in await broker.positions())
        return {"orders": orders, "exits": settled, "positions": positions}
    finally:
        await broker.close()


async def test_paper_and_both_sandboxes_fill_one_replayed_day_alike(tmp_path: Path) -> None:
    instruments, ticks = _replayed_day()
    assert len(ticks) > 400
    reports = {}
    for venue in VENUES:
        clock = SteppedClock(datetime.combine(DAY, time(9, 15), tzinfo=IST))
        database_url = f"sqlite:///{tmp_path / venue}.db"
        db = init_db(database_url)
        settings = load_settings(broker=venue, database_url=database_url,
                                 paper={"slippage_bps": 5.0, "partial_fill_ratio": 0.5})
        broker = make_broker(settings, Credentials(), clock=clock, instruments=instruments, db=db)
        reports[venue] = await _trade_the_day(broker, db, clock, instruments, ticks)
        db.dispose()
    paper = reports["paper"]
    assert len(paper["orders"]) == len(SYMBOLS)
    assert {status for status, *_ in paper["orders"].values()} == {"FILLED"}
    assert paper["exits"], "some exit fired on the day"
    assert reports["zerodha-sandbox"] == paper
    assert reports["upstox-sandbox"] == paper


@pytest.mark.e2e
@pytest.mark.timeout(1500)  # three demo runs of about a minute each, side by side on two cores
def test_the_demo_reports_the_same_trades_and_positions_on_every_simulated_venue() -> None:
    # `autotrader demo --json` once per venue, side by side, each with its own database and Prefect home
    summaries = run_demos([DemoRun(venue, None) for venue in VENUES], "2024-06-03", "2024-06-05", len(VENUES))
    outcomes = {run.venue: outcome(summary) for run, summary in summaries.items()}
    assert outcomes["paper"]["trades"], "the demo days close some trades"
    assert outcomes["zerodha-sandbox"] == outcomes["paper"]
    assert outcomes["upstox-sandbox"] == outcomes["paper"]
