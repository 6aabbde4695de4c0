"""The live view of a session as plain rows: how far the trading session is on its clock, the positions
(open ones with their last price and unrealised P&L, the day's closed ones with their exit), the setups
found so far, the day's realised P&L and the kill switch. Read from the trading engine's public state and
the day's tables; the flow publishes it as Prefect artifacts (tasks/artifacts.py), nothing here knows
Prefect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.models import IST, Trade
from engine.portfolio.positions import OpenPosition
from engine.storage.setups import SetupRecord
from engine.strategy.window import SessionLike
from engine.trading import TradingEngine

POSITION_COLUMNS = ("symbol", "qty", "avg", "ltp", "unrealised", "stop", "target", "exit_status")
SETUP_COLUMNS = ("symbol", "found_at", "entry", "stop", "target", "status")


@dataclass(frozen=True)
class SessionView:
    at: datetime  # on the session clock
    progress_pct: float  # share of the trading session elapsed, 0..100
    positions: list[dict[str, Any]]  # POSITION_COLUMNS: open positions first, then the day's closed trades
    setups: list[dict[str, Any]]  # SETUP_COLUMNS, in the order they were found
    realised_pnl: float  # net of charges, the day's closed trades
    unrealised_pnl: float  # gross, the open positions at their last price
    open_positions: int
    closed_trades: int
    kill_switch: bool
    kill_reason: str = ""
    market_status: str = ""
    ticks: int = 0  # streamed so far (the caller counts them)


def session_progress(session: SessionLike, now: datetime) -> float:
    """Percent of the trading session elapsed at `now`: 0 before the open, 100 from the close."""
    length = (session.close - session.open).total_seconds()
    share = (now - session.open).total_seconds() / length if length > 0 else 1.0
    return round(min(max(share, 0.0), 1.0) * 100, 2)


def session_view(engine: TradingEngine, *, ticks: int = 0) -> SessionView:
    """The view at the engine's clock. Reads, never changes, the engine's state; call it from the engine's
    event loop (it reads the in-memory positions without awaiting)."""
    now = engine.clock.now()
    held = sorted(engine.positions.open.values(), key=lambda p: (p.opened_at, p.instrument.symbol))
    trades = engine.positions.trades_of(engine.trading_day)
    setups, _ = engine.setups.todays_setups_and_entries()
    open_rows = [_open_row(p, engine.guard.exits_at_broker) for p in held]
    return SessionView(
        at=now,
        progress_pct=session_progress(engine.session, now) if engine.session is not None else 0.0,
        positions=open_rows + [_closed_row(t) for t in trades],
        setups=[_setup_row(s) for s in sorted(setups, key=lambda s: (s.found_at, s.symbol))],
        realised_pnl=round(sum(t.net_pnl for t in trades), 2),
        unrealised_pnl=round(sum(row["unrealised"] or 0.0 for row in open_rows), 2),
        open_positions=len(held),
        closed_trades=len(trades),
        kill_switch=engine.kill_switch,
        kill_reason=engine.kill_reason,
        market_status=engine.market_status.value if engine.market_status is not None else "",
        ticks=ticks,
    )


def _open_row(position: OpenPosition, exits_at_broker: bool) -> dict[str, Any]:
    ltp = position.last_price or None  # no tick yet this session: no price to value it at
    unrealised = round(position.quantity * (ltp - position.average_price), 2) if ltp is not None else None
    return {"symbol": position.instrument.symbol, "qty": position.quantity, "avg": position.average_price,
            "ltp": ltp, "unrealised": unrealised, "stop": position.stop, "target": position.target,
            "exit_status": _exit_status(position, exits_at_broker)}


def _exit_status(position: OpenPosition, exits_at_broker: bool) -> str:
    if position.exit_client_order_id is not None:
        return f"exiting: {position.exit_reason}"
    if position.exit_id is not None:
        return f"protected by GTT {position.exit_id}"
    return "unprotected: GTT pending" if exits_at_broker else "watched: the engine exits"


def _closed_row(trade: Trade) -> dict[str, Any]:
    return {"symbol": trade.symbol, "qty": trade.quantity, "avg": trade.entry_price, "ltp": trade.exit_price,
            "unrealised": 0.0, "stop": None, "target": None,
            "exit_status": f"closed {trade.exit_time.astimezone(IST):%H:%M}: {trade.exit_reason}, "
                           f"net {trade.net_pnl:+,.2f}"}


def _setup_row(row: SetupRecord) -> dict[str, Any]:
    return {"symbol": row.symbol, "found_at": f"{row.found_at.astimezone(IST):%H:%M:%S}", "entry": row.entry,
            "stop": row.stop, "target": row.target, "status": row.status.value}
