"""Upstox adapter (upstox-python-sdk): `UpstoxBroker`, its config, and a loopback sandbox server
that speaks the same REST contract (`AUTOTRADER_BROKER=upstox` without an account)."""

from engine.brokers.upstox.config import UPSTOX_CAPABILITIES, UpstoxConfig
from engine.brokers.upstox.execution import UpstoxBroker

__all__ = ["UPSTOX_CAPABILITIES", "UpstoxBroker", "UpstoxConfig"]
