"""The trading engine, in parts named for what they do: `router` (TradingEngine, the one decision
path of live, replayed and backtested runs), `owner` (one queue, one owner), `events` (events in,
commands out), `entries`, `guard` (the open positions), `risk_control`, `setups`."""

from engine.trading.entries import PendingEntry
from engine.trading.events import OrderManagerLike
from engine.trading.requirements import required_indicator_config
from engine.trading.router import TradingEngine
from engine.trading.summary import DaySummary

__all__ = ["DaySummary", "OrderManagerLike", "PendingEntry", "TradingEngine", "required_indicator_config"]
