"""The real kiteconnect client against the loopback Kite server with faults: every intended order
exists exactly once at the broker."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from engine.brokers.base import TokenExpired
from engine.brokers.zerodha.sandbox import Fault, KiteSandbox
from engine.clock import SteppedClock
from engine.execution import OrderManager, exit_request_for, make_client_order_id
from engine.execution.ids import triggered_order_id
from engine.execution.manager import RetryPolicy
from engine.models import ExitStatus, Instrument, OrderIntent, OrderPurpose, OrderStatus, OrderType, Side
from tests.engine.execution.conftest import FAST_RETRY, TRADING_DAY, kite_broker


def _entry(instrument: Instrument, key: str = "setup-1", **kwargs: object) -> OrderIntent:
    return OrderIntent(client_order_id=make_client_order_id(TRADING_DAY, key), instrument=instrument,
                       side=Side.BUY, quantity=10, **kwargs)  # type: ignore[arg-type]


def _kinds(manager: OrderManager, client_order_id: str) -> list[str]:
    return [event.kind for event in manager.journal.events(client_order_id)]


@pytest.mark.parametrize("fault", list(Fault.__members__.values())[:4], ids=lambda f: f.name)
async def test_order_exists_exactly_once_at_the_broker_despite_a_fault(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument, fault: Fault
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    sandbox.inject(fault, route="order.place")
    intent = _entry(instrument)
    order = await kite_manager.submit(intent)
    at_broker = sandbox.orders(tag=intent.client_order_id)
    assert len(at_broker) == 1
    assert order.broker_order_id == at_broker[0]["order_id"]
    assert (await kite_manager.refresh(intent.client_order_id)).status is OrderStatus.FILLED
    kinds = _kinds(kite_manager, intent.client_order_id)
    assert kinds[0] == "INTENT"
    assert "ERROR" in kinds and "LOOKUP" in kinds
    accepted_before_failing = fault in (Fault.TIMEOUT_AFTER_ACCEPT, Fault.DROP_AFTER_ACCEPT)
    assert kinds.count("ATTEMPT") == (1 if accepted_before_failing else 2)


async def test_repeated_faults_still_place_one_order(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    sandbox.inject(Fault.RATE_LIMIT, route="order.place", times=1)
    sandbox.inject(Fault.DROP_AFTER_ACCEPT, route="order.place", times=1)
    sandbox.inject(Fault.SERVER_ERROR, route="orders", times=1)  # the first look-up fails too
    intent = _entry(instrument)
    await kite_manager.submit(intent)
    assert len(sandbox.orders(tag=intent.client_order_id)) == 1
    assert len(sandbox.orders()) == 1


async def test_submitting_the_same_intent_again_never_places_a_second_order(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    intent = _entry(instrument)
    first = await kite_manager.submit(intent)
    second = await kite_manager.submit(intent)
    assert first.broker_order_id == second.broker_order_id
    assert len(sandbox.orders()) == 1


async def test_rejection_is_recorded_and_not_retried(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    intent = _entry(instrument, order_type=OrderType.LIMIT, price=-1.0)
    order = await kite_manager.submit(intent)
    assert order.status is OrderStatus.REJECTED
    assert "InputException" in order.message
    assert sandbox.orders() == []
    kinds = _kinds(kite_manager, intent.client_order_id)
    assert kinds.count("ATTEMPT") == 1
    error = next(e for e in kite_manager.journal.events(intent.client_order_id) if e.kind == "ERROR")
    assert json.loads(error.detail_json)["retry"] is False


async def test_expired_token_halts_entries_and_alerts(
    kite: object, db: Engine, clock: SteppedClock, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    alerts: list[str] = []
    manager = OrderManager(kite, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY,  # type: ignore[arg-type]
                           on_alert=alerts.append)
    sandbox.expire_token()
    with pytest.raises(TokenExpired):
        await manager.submit(_entry(instrument, "a"))
    assert manager.entries_halted and alerts and "token" in alerts[0]
    assert manager.journal.get(_entry(instrument, "a").client_order_id).status == "REJECTED"  # type: ignore[union-attr]
    with pytest.raises(TokenExpired):
        await manager.submit(_entry(instrument, "b"))
    assert manager.journal.get(_entry(instrument, "b").client_order_id) is None  # halted before journaling
    assert sandbox.orders() == []


async def test_halted_entries_are_not_sent_even_when_already_journaled(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    """An entry journaled PENDING before the halt (never sent) must not go out after it either."""
    token = sandbox.access_token
    sandbox.expire_token()
    with pytest.raises(TokenExpired):
        await kite_manager.submit(_entry(instrument, "a"))
    assert kite_manager.entries_halted
    sandbox.access_token = token  # the broker would take it now: only the halt may stop it
    waiting = _entry(instrument, "b")
    kite_manager.journal.record_intent(waiting)
    with pytest.raises(TokenExpired):
        await kite_manager.submit(waiting)
    assert sandbox.orders() == []
    assert kite_manager.journal.get(waiting.client_order_id).status == "PENDING"  # type: ignore[union-attr]


async def test_restart_after_a_send_with_no_answer_finds_the_order_by_tag(
    db: Engine, clock: SteppedClock, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    """Crash simulation: the intent is journaled and sent, the answer is lost and the process dies
    (a one-attempt manager gives up with the order SUBMITTED); a new process resubmits the same
    decision and finds the order by its tag instead of placing it again."""
    sandbox.set_last_price("RELIANCE", 2900.0)
    sandbox.inject(Fault.DROP_AFTER_ACCEPT, route="order.place")
    intent = _entry(instrument)
    crashed = kite_broker(sandbox, clock, instrument)
    first = OrderManager(crashed, db, clock, trading_day=TRADING_DAY, retry=RetryPolicy(attempts=1))
    lost = await first.submit(intent)
    assert lost.status is OrderStatus.SUBMITTED and lost.broker_order_id is None
    await crashed.close()

    restarted = kite_broker(sandbox, clock, instrument)
    second = OrderManager(restarted, db, clock, trading_day=TRADING_DAY, retry=FAST_RETRY)
    found = await second.submit(intent)
    await restarted.close()
    assert len(sandbox.orders(tag=intent.client_order_id)) == 1
    assert found.status is OrderStatus.FILLED
    assert found.broker_order_id == sandbox.orders()[0]["order_id"]
    kinds = _kinds(second, intent.client_order_id)
    assert kinds.count("ATTEMPT") == 1  # only the first process ever sent it
    assert kinds[-1] in ("STATUS", "LOOKUP")


async def test_intent_journaled_but_never_sent_is_sent_once_after_restart(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    intent = _entry(instrument)
    kite_manager.journal.record_intent(intent)  # the process died right after the write-ahead
    order = await kite_manager.submit(intent)
    assert order.status is OrderStatus.OPEN  # Kite answers with the order id only
    assert (await kite_manager.refresh(intent.client_order_id)).status is OrderStatus.FILLED
    assert len(sandbox.orders(tag=intent.client_order_id)) == 1


async def test_open_orders_refreshes_several_fills_with_one_trade_book_read(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    limits = [_entry(instrument, f"limit-{i}", order_type=OrderType.LIMIT, price=2800.0) for i in range(3)]
    sandbox.set_last_price("RELIANCE", 2900.0)
    for intent in limits:
        assert (await kite_manager.submit(intent)).status is OrderStatus.OPEN
    sandbox.set_last_price("RELIANCE", 2790.0)  # all three fill
    before = len(sandbox.handled)
    assert await kite_manager.open_orders() == []
    assert [h.path for h in sandbox.handled[before:]] == ["/orders", "/trades"]
    for intent in limits:
        assert [f.quantity for f in kite_manager.journal.fills(intent.client_order_id)] == [10]


async def test_reusing_an_id_for_another_order_is_refused(kite_manager: OrderManager, instrument: Instrument) -> None:
    kite_manager.journal.record_intent(_entry(instrument))
    other = OrderIntent(client_order_id=_entry(instrument).client_order_id, instrument=instrument, side=Side.SELL,
                        quantity=10, purpose=OrderPurpose.EXIT)
    with pytest.raises(ValueError, match="different order"):
        await kite_manager.submit(other)


@pytest.mark.parametrize("fault", [Fault.TIMEOUT_AFTER_ACCEPT, Fault.DROP_AFTER_ACCEPT, Fault.SERVER_ERROR])
async def test_exit_is_placed_exactly_once_despite_a_fault(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument, fault: Fault
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    await kite_manager.submit(_entry(instrument))
    sandbox.inject(fault, route="gtt.place")
    request = exit_request_for(instrument, 10, stop=2850.0, target=3000.0, last_price=2900.0,
                               tag=make_client_order_id(TRADING_DAY, "setup-1", OrderPurpose.EXIT))
    placed = await kite_manager.place_exit(request, position_id=None)
    gtts = sandbox.gtts()
    assert len(gtts) == 1 and gtts[0]["status"] == "active"
    assert placed.exit_id == str(gtts[0]["id"])
    assert [o["price"] for o in gtts[0]["orders"]] == [request.stop_limit, request.target_limit]
    assert await kite_manager.place_exit(request) == placed or len(sandbox.gtts()) == 1
    assert len(sandbox.gtts()) == 1


async def test_fired_exit_is_settled_with_its_leg_journaled_and_filled(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    await kite_manager.submit(_entry(instrument))
    request = exit_request_for(instrument, 10, stop=2850.0, target=3000.0, last_price=2900.0, tag="EXITTAG1")
    placed = await kite_manager.place_exit(request)
    assert await kite_manager.sync_exits() == []
    sandbox.set_last_price("RELIANCE", 3001.0)
    settled = await kite_manager.sync_exits()
    assert [(e.exit_id, e.status, e.exit_price) for e in settled] == [(placed.exit_id, ExitStatus.TRIGGERED_TARGET,
                                                                        3001.0)]
    assert await kite_manager.sync_exits() == []  # reported once
    leg = kite_manager.journal.get(triggered_order_id(placed.exit_id))
    assert leg is not None and leg.status == "FILLED" and leg.side == "SELL"
    assert [f.quantity for f in kite_manager.journal.fills(leg.client_order_id)] == [10]
    assert kite_manager.journal.gtt(placed.exit_id).status == "TRIGGERED_TARGET"  # type: ignore[union-attr]


async def test_modify_and_cancel_exit_update_the_gtts_table(
    kite_manager: OrderManager, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    await kite_manager.submit(_entry(instrument))
    placed = await kite_manager.place_exit(
        exit_request_for(instrument, 10, stop=2850.0, target=3000.0, last_price=2900.0, tag="EXITTAG2"))
    sandbox.inject(Fault.SERVER_ERROR, route="gtt.modify")
    moved = exit_request_for(instrument, 10, stop=2880.0, target=3050.0, last_price=2910.0, tag="EXITTAG2")
    await kite_manager.modify_exit(placed.exit_id, moved)
    row = kite_manager.journal.gtt(placed.exit_id)
    assert row is not None and (row.stop_trigger, row.target_trigger) == (2880.0, 3050.0)
    assert sandbox.gtts()[0]["condition"]["trigger_values"] == [2880.0, 3050.0]
    await kite_manager.cancel_exit(placed.exit_id)
    assert kite_manager.journal.gtt(placed.exit_id).status == "CANCELLED"  # type: ignore[union-attr]
    assert sandbox.gtts()[0]["status"] == "deleted"
