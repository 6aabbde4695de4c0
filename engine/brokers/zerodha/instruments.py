"""Kite's NSE instrument master: `instruments("NSE")` (GET /instruments/NSE, a CSV body the SDK
parses into dicts: instrument_token, exchange_token, tradingsymbol, name, tick_size (rupees),
lot_size, instrument_type, segment, ...). Kite lists no ISIN: `engine.data.master` joins its rows
to Upstox's by exchange token, then symbol."""

from __future__ import annotations

from typing import Any

from engine.brokers.zerodha.client import KiteClient
from engine.brokers.zerodha.config import EXCHANGE, ZerodhaConfig


def fetch_kite_instruments(config: ZerodhaConfig) -> list[dict[str, Any]]:
    """Every row of Kite's NSE master, as the SDK parses them. Raises the adapter's errors
    (`TemporaryBrokerError`, `TokenExpired`, ...), with redacted messages."""
    client = KiteClient(config)
    try:
        return client.instruments(EXCHANGE)
    finally:
        client.close()
