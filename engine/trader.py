"""Compatibility: the trading engine lives in `engine.trading` (see `engine.trading.router`)."""

from engine.trading import DaySummary, OrderManagerLike, PendingEntry, TradingEngine, required_indicator_config

__all__ = ["DaySummary", "OrderManagerLike", "PendingEntry", "TradingEngine", "required_indicator_config"]
