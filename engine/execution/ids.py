"""Deterministic client order ids: the idempotency key of an order, sent to the broker as its tag.

`AT` + yymmdd + purpose letter + 11 base-32 characters of a SHA-256 of the caller's key = 20
alphanumeric characters (Kite's tag limit and alphabet). The same day, key and purpose give the same
id, so a re-run of the same decision finds the order it already placed instead of placing another."""

from __future__ import annotations

import hashlib
from datetime import date

from engine.models import OrderPurpose

MAX_TAG_LENGTH = 20
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32: no I, L, O, U
_PREFIX = "AT"


def make_client_order_id(trading_day: date, key: str, purpose: OrderPurpose = OrderPurpose.ENTRY) -> str:
    """The client order id for `key` (e.g. a setup id or "RELIANCE|trend_pullback") on `trading_day`."""
    if not key:
        raise ValueError("client order id key must not be empty")
    purpose = OrderPurpose(purpose)
    digest = int.from_bytes(hashlib.sha256(f"{trading_day.isoformat()}|{purpose}|{key}".encode()).digest()[:8])
    chars = []
    for _ in range(11):
        digest, index = divmod(digest, 32)
        chars.append(_ALPHABET[index])
    return f"{_PREFIX}{trading_day:%y%m%d}{purpose.value[0]}{''.join(chars)}"


def is_our_tag(tag: str | None) -> bool:
    """Whether a broker order's tag looks like one of our client order ids."""
    if not tag:
        return False
    return len(tag) == MAX_TAG_LENGTH and tag.startswith(_PREFIX) and tag[2:8].isdigit()


def triggered_order_id(exit_id: str) -> str:
    """Journal id of the order a fired GTT placed (the broker gives it no tag of ours): `GTT<exit_id>`
    when that fits 20 alphanumeric characters, else `GTT` + 17 base-32 characters of a hash of the
    exit id. Distinct exit ids give distinct journal ids (never a truncation)."""
    candidate = f"GTT{exit_id}"
    if len(candidate) <= MAX_TAG_LENGTH and candidate.isalnum():
        return candidate
    return "GTT" + _base32(f"exit|{exit_id}", 17)


def _base32(text: str, length: int) -> str:
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:11])
    return "".join(_ALPHABET[(digest >> (5 * i)) & 31] for i in range(length))
