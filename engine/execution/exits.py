"""Building two-leg exits (GTT OCO) for an open long."""

from __future__ import annotations

from engine.brokers.base import limit_below
from engine.data.ticks import PriceRole, round_for
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
    sits `limit_offset_pct` percent below its trigger to stay marketable once the trigger is crossed.
    Every price is rounded to the tick grid by `engine.data.ticks.round_for` (triggers up: the stop is
    never loosened, the target never lowered; limits down)."""
    if not stop < last_price < target:
        raise ValueError(f"exit of a long needs stop < last price < target, got {stop} / {last_price} / {target}")
    if quantity <= 0:
        raise ValueError(f"exit quantity must be positive, got {quantity}")
    stop_trigger = round_for(instrument, stop, PriceRole.STOP_TRIGGER)
    target_trigger = round_for(instrument, target, PriceRole.TARGET_TRIGGER)
    return ExitRequest(
        instrument=instrument,
        quantity=quantity,
        stop_trigger=stop_trigger,
        stop_limit=limit_below(instrument, stop_trigger, limit_offset_pct),
        target_trigger=target_trigger,
        target_limit=limit_below(instrument, target_trigger, limit_offset_pct, PriceRole.TARGET_LIMIT),
        last_price=last_price,
        tag=tag,
    )
