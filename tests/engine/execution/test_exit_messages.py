"""A settled exit's broker message (a fired GTT leg's rejection reason, as Kite reports it in
`orders[].result.order_result.rejection_reason`) is journaled and logged, not dropped; and a fired
leg is journaled while it still works, so a leg that gapped through its limit can be chased."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Collection

import pytest
from sqlalchemy import Engine

from engine.brokers.paper import PaperBroker
from engine.clock import SteppedClock
from engine.execution import OrderManager, exit_request_for
from engine.execution.ids import triggered_order_id
from engine.models import ExitOrder, ExitStatus, Instrument, OrderIntent, OrderStatus, Side, Tick
from tests.engine.execution.conftest import FAST_RETRY, TRADING_DAY

REASON = "Your order price is lower than the current lower circuit limit of 70.65."


def _leg_refused(exit_order: ExitOrder) -> ExitOrder:
    if exit_order.status is not ExitStatus.TRIGGERED_STOP:
        return exit_order
    return dataclasses.replace(exit_order, status=ExitStatus.REJECTED, triggered_order_id=None,
                               message=f"stop leg rejected: {REASON}")


class LegRefusingPaper(PaperBroker):
    """Reports every fired exit as Kite does when it could not place the leg's order."""

    async def list_exits(self) -> list[ExitOrder]:
        return [_leg_refused(e) for e in await super().list_exits()]

    async def get_exits(self, exit_ids: Collection[str]) -> list[ExitOrder]:
        return [_leg_refused(e) for e in await super().get_exits(exit_ids)]


async def _tick(paper: PaperBroker, clock: SteppedClock, instrument: Instrument, price: float) -> None:
    clock.advance(1.0)
    await paper.on_tick(Tick(instrument.instrument_key, price, int(clock.now().timestamp() * 1000)))


async def _protected_long(paper: PaperBroker, manager: OrderManager, clock: SteppedClock,
                          instrument: Instrument) -> ExitOrder:
    await manager.submit(OrderIntent("BUYMSG", instrument, Side.BUY, 10))
    await _tick(paper, clock, instrument, 100.0)
    request = exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="EXITMSG")
    return await manager.place_exit(request)


async def test_a_rejected_legs_reason_is_journaled_and_logged(
    db: Engine, clock: SteppedClock, instrument: Instrument, caplog: pytest.LogCaptureFixture
) -> None:
    paper = LegRefusingPaper(clock, slippage_bps=0.0)
    manager = OrderManager(paper, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)
    placed = await _protected_long(paper, manager, clock, instrument)
    await _tick(paper, clock, instrument, 94.0)  # fires the stop
    with caplog.at_level(logging.WARNING, logger="engine.execution.manager"):
        [settled] = await manager.sync_exits()
    assert (settled.exit_id, settled.status) == (placed.exit_id, ExitStatus.REJECTED)
    [event] = [e for e in manager.journal.events("EXITMSG") if e.kind == "EXIT_SETTLED"]
    assert json.loads(event.detail_json)["message"] == f"stop leg rejected: {REASON}"
    assert REASON in caplog.text


async def test_a_fired_leg_is_journaled_while_it_rests_and_settles_with_what_it_sold(
    db: Engine, clock: SteppedClock, instrument: Instrument
) -> None:
    paper = PaperBroker(clock, slippage_bps=0.0)
    manager = OrderManager(paper, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)
    placed = await _protected_long(paper, manager, clock, instrument)
    await _tick(paper, clock, instrument, 90.0)  # gaps through the stop's LIMIT (94.5): the leg rests
    assert await manager.sync_exits() == []  # not settled while its order works …
    leg = manager.journal.get(triggered_order_id(placed.exit_id))
    assert leg is not None and (leg.status, leg.filled_quantity) == (OrderStatus.OPEN.value, 0)  # … but journaled
    await manager.cancel(leg.client_order_id)  # a chase
    [settled] = await manager.sync_exits()
    assert (settled.status, settled.exit_price, settled.exit_quantity) == (ExitStatus.TRIGGERED_STOP, None, 0)
