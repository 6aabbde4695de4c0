"""Building two-leg exits (GTT OCO) for an open long."""

from __future__ import annotations

from engine.brokers.base import limit_below
from engine.models import ExitRequest, Instrument


def exit_request_for(
    instrument: Instrument,
    quantity: int,
    *,
    stop: float,
    target: float,
    last_price: float,
    tag: str,
    limit_offset_pct: float = 0.5,
) -> ExitRequest:
    """A stop + target exit of a long. Kite GTTs place LIMIT orders only, so each SELL leg's limit
    sits `limit_offset_pct` percent below its trigger (rounded down to the tick grid) to stay
    marketable once the trigger is crossed."""
    if not stop < last_price < target:
        raise ValueError(f"exit of a long needs stop < last price < target, got {stop} / {last_price} / {target}")
    if quantity <= 0:
        raise ValueError(f"exit quantity must be positive, got {quantity}")
    stop_trigger = instrument.round_price(stop)
    target_trigger = instrument.round_price(target)
    return ExitRequest(
        instrument=instrument,
        quantity=quantity,
        stop_trigger=stop_trigger,
        stop_limit=limit_below(instrument, stop_trigger, limit_offset_pct),
        target_trigger=target_trigger,
        target_limit=limit_below(instrument, target_trigger, limit_offset_pct),
        last_price=last_price,
        tag=tag,
    )
