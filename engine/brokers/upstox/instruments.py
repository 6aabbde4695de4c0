"""Upstox's published NSE instrument master: a gzipped JSON array at a public URL (default
https://assets.upstox.com/market-quote/instruments/exchange/NSE.json.gz, setting
`instruments.upstox_master_url`), one object per instrument: segment, instrument_type, trading_symbol,
isin, instrument_key, exchange_token, name, lot_size and tick_size (in paise). No token is sent."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import httpx

from engine.brokers.base import TemporaryBrokerError, check_http_url
from engine.secrets import redact


class MasterFormatError(ValueError):
    """The downloaded master is not a gzipped (or plain) JSON array of objects."""


def decode_upstox_master(body: bytes, url: str) -> list[dict[str, Any]]:
    """The records of a downloaded master (gzip, or plain JSON when a proxy already unpacked it)."""
    try:
        raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
        records = json.loads(raw)
    except (OSError, EOFError, zlib.error, ValueError) as error:
        raise MasterFormatError(f"Upstox master at {url}: not gzipped JSON ({type(error).__name__}: {error})") from None
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise MasterFormatError(f"Upstox master at {url}: expected a JSON array of instrument objects")
    return records


def fetch_upstox_master(url: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Download and decode the master. `TemporaryBrokerError` when it cannot be fetched,
    `MasterFormatError` when it is not the documented shape."""
    url = check_http_url("instruments.upstox_master_url", url,
                         "https://assets.upstox.com/market-quote/instruments/exchange/NSE.json.gz",
                         sandbox="upstox-sandbox")
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as error:
        message = f"Upstox master unreachable at {url}: {type(error).__name__}: {error}"
        raise TemporaryBrokerError(redact(message)) from None
    return decode_upstox_master(response.content, url)
