"""Open positions and their GTT exits carried across a split or bonus (`engine.data.corporate_actions`).

A split/bonus of `factor` (new shares per old share) leaves the holding's value unchanged: quantity x factor,
prices / factor. Without the rebase the live path compares post-split prices with pre-split stops: a phantom loss
of 1 - 1/factor that sells the position and trips the kill switch.

- quantity: whole shares, `floor(quantity x factor)` (a fractional entitlement is paid in cash by the company);
- average: the cost over the new quantity, NOT rounded to the tick grid: an average is never sent to the
  broker, and rounding it would book a P&L the action did not make;
- stop and target: / factor, on the tick grid by `engine.data.ticks.round_for` (triggers round up: the stop is
  never loosened, the target never lowered);
- the GTT: modified to the new quantity and triggers (`OrderManager.modify_exit`); when the broker refuses the
  modification (e.g. it deleted the GTT at the ex-date) a new protected exit is placed under a new tag."""

from __future__ import annotations

import math
from contextlib import suppress
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlmodel import Session

from engine.brokers.base import OrderRejected
from engine.data.ticks import PriceRole, round_for
from engine.execution.exits import exit_request_for
from engine.execution.manager import OrderManager
from engine.models import IST, Instrument
from engine.storage.positions import SqlPositionStore, position_store


@dataclass(frozen=True, slots=True)
class RebasedPosition:
    """One open position before and after the action, and the exit it needs (`exit_id` None: no GTT)."""

    position_id: int
    quantity: tuple[int, int]  # (before, after)
    average_price: tuple[float, float]
    stop: tuple[float, float]
    target: tuple[float, float]
    exit_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> RebasedPosition:
        return cls(saved["position_id"], tuple(saved["quantity"]), tuple(saved["average_price"]),  # type: ignore[arg-type]
                   tuple(saved["stop"]), tuple(saved["target"]), saved["exit_id"])  # type: ignore[arg-type]


def rebased_values(instrument: Instrument, quantity: int, average: float, stop: float, target: float,
                   factor: float) -> tuple[int, float, float, float]:
    """(quantity, average, stop, target) after a split/bonus of `factor` (see the module docstring)."""
    new_quantity = math.floor(quantity * factor + 1e-9)  # 1e-9: 3 x 1.5 is 4.499999... in binary
    if new_quantity <= 0:
        raise ValueError(f"{instrument.symbol}: {quantity} shares x {factor} leaves no whole share")
    return (new_quantity, average * quantity / new_quantity,
            round_for(instrument, stop / factor, PriceRole.STOP_TRIGGER),
            round_for(instrument, target / factor, PriceRole.TARGET_TRIGGER))


def rebase_open_positions(session: Session, instrument: Instrument, ex_date: date,
                          factor: float) -> list[RebasedPosition]:
    """Rebase (in `session`, uncommitted) every OPEN position of `instrument`'s symbol opened before `ex_date`;
    one opened on or after it was bought at post-action prices already."""
    rebased = []
    store = SqlPositionStore.within(session)
    for row in store.open_positions():
        if row.symbol != instrument.symbol or row.opened_at.astimezone(IST).date() >= ex_date:
            continue
        quantity, average, stop, target = rebased_values(instrument, row.quantity, row.average_price, row.stop,
                                                         row.target, factor)
        rebased.append(RebasedPosition(row.id, (row.quantity, quantity), (row.average_price, average),
                                       (row.stop, stop), (row.target, target), row.exit_id))
        store.update(row.id, quantity=quantity, average_price=average, stop=stop, target=target)
    return rebased


async def carry_exit(orders: OrderManager, instrument: Instrument, position: RebasedPosition, last_price: float,
                     *, replacement_tag: str, limit_offset_pct: float) -> dict[str, Any]:
    """Move `position`'s GTT to its rebased quantity/stop/target (`last_price`: the previous close on the new
    basis, which the triggers must straddle; `limit_offset_pct`: the legs' LIMIT below their triggers, as the guard
    places them). Modifying to the same values is idempotent, so a re-run after a
    crash is harmless. A refused modification: the old exit is cancelled and a new one placed under
    `replacement_tag` (the modification journals under the GTT's own tag), recorded as the position's exit.
    Triggers that no longer straddle the last close: the old exit is cancelled and the position left without
    one, which the live session's guard then protects (or exits) at its first tick. Returns what was done."""
    assert position.exit_id is not None
    done = {"position_id": position.position_id, "replaced": position.exit_id}
    try:
        request = exit_request_for(instrument, position.quantity[1], stop=position.stop[1],
                                   target=position.target[1], last_price=last_price, tag=replacement_tag,
                                   limit_offset_pct=limit_offset_pct)
    except ValueError as unusable:
        await _cancel_quietly(orders, position.exit_id)
        _record_exit(orders, position.position_id, None)
        return {**done, "exit_id": None, "action": "cancelled", "why": str(unusable)}
    try:
        modified = await orders.modify_exit(position.exit_id, request)
        return {"position_id": position.position_id, "exit_id": modified.exit_id, "action": "modified"}
    except OrderRejected as refused:
        await _cancel_quietly(orders, position.exit_id)
        placed = await orders.place_exit(request, position_id=position.position_id)
        _record_exit(orders, position.position_id, placed.exit_id)
        return {**done, "exit_id": placed.exit_id, "action": "replaced", "why": str(refused)}


async def _cancel_quietly(orders: OrderManager, exit_id: str) -> None:
    with suppress(OrderRejected):  # already gone at the broker: nothing left to cancel
        await orders.cancel_exit(exit_id)


def _record_exit(orders: OrderManager, position_id: int, exit_id: str | None) -> None:
    position_store(orders.db).update(position_id, exit_id=exit_id)


__all__ = ["RebasedPosition", "carry_exit", "rebase_open_positions", "rebased_values"]
