"""Exits as two SINGLE GTTs: OCO enforcement, hand-made changes, gaps through both triggers,
half-built exits and restarts (beyond the shared contract)."""

from __future__ import annotations

from datetime import date

import pytest

from engine.brokers.base import OrderRejected
from engine.brokers.upstox import UpstoxBroker
from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.clock import SteppedClock
from engine.execution import exit_request_for, make_client_order_id
from engine.models import ExitOrder, ExitRequest, ExitStatus, Instrument, OrderIntent, OrderStatus, Side
from tests.engine.brokers.upstox.conftest import make_config


def _request(instrument: Instrument, stop: float = 95.0, target: float = 110.0) -> ExitRequest:
    return exit_request_for(instrument, 10, stop=stop, target=target, last_price=100.0, tag="EXITS")


async def _hold(broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument) -> None:
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    intent = OrderIntent(make_client_order_id(date(2024, 6, 4), "hold"), instrument, Side.BUY, 10)
    await broker.place_order(intent)


async def _protected(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> tuple[ExitOrder, str, str]:
    """A held position with its exit placed: (the exit, its stop GTT id, its target GTT id)."""
    await _hold(broker, sandbox, instrument)
    placed = await broker.place_exit_oco(_request(instrument))
    stop_id, target_id = placed.exit_id.split("+")
    return placed, stop_id, target_id


def _rule_status(sandbox: UpstoxSandbox, gtt_id: str) -> str:
    return str(sandbox.gtts[gtt_id]["rules"][0]["status"])


async def test_legs_are_sell_gtts_with_entry_rules_below_and_above(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    placed, stop_id, target_id = await _protected(broker, sandbox, instrument)
    stop, target = sandbox.gtts[stop_id], sandbox.gtts[target_id]
    assert (stop["type"], stop["product"], stop["quantity"]) == ("SINGLE", "D", 10)
    assert [(r["strategy"], r["trigger_type"], r["trigger_price"], r["transaction_type"]) for r in stop["rules"]] == [
        ("ENTRY", "BELOW", 95.0, "SELL")
    ]
    assert [(r["strategy"], r["trigger_type"], r["trigger_price"]) for r in target["rules"]] == [
        ("ENTRY", "ABOVE", 110.0)
    ]
    assert (placed.stop_limit, placed.target_limit) == (94.5, 109.45)  # the request's limits


async def test_a_fired_stop_cancels_the_target_leg_and_reports_the_exit_price(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    placed, stop_id, target_id = await _protected(broker, sandbox, instrument)
    sandbox.set_last_price(instrument.instrument_key, 94.9)
    assert _rule_status(sandbox, target_id) == "SCHEDULED"  # Upstox itself links nothing
    [fired] = await broker.list_exits()
    assert fired.status is ExitStatus.TRIGGERED_STOP
    assert _rule_status(sandbox, target_id) == "CANCELLED"
    assert fired.exit_price == 94.9
    sold = await broker.get_order(fired.triggered_order_id or "")
    assert (sold.side, sold.status, sold.price) == (Side.SELL, OrderStatus.FILLED, 94.5)
    with pytest.raises(OrderRejected, match="no waiting leg"):
        await broker.cancel_exit(placed.exit_id)
    assert _rule_status(sandbox, stop_id) == "COMPLETED"


async def test_a_leg_cancelled_by_hand_ends_the_whole_exit(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    _, stop_id, target_id = await _protected(broker, sandbox, instrument)
    await broker._run(broker.client.cancel_gtt, target_id)  # as if cancelled in the Upstox app
    [listed] = await broker.list_exits()
    assert listed.status is ExitStatus.CANCELLED
    assert _rule_status(sandbox, stop_id) == "CANCELLED"


async def test_a_gap_through_both_triggers_sells_once_and_never_goes_short(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    placed, _, _ = await _protected(broker, sandbox, instrument)
    sandbox.set_last_price(instrument.instrument_key, 111.0)  # target fires and sells the 10
    sandbox.set_last_price(instrument.instrument_key, 90.0)  # the stop fires before anyone polls
    [listed] = await broker.list_exits()
    assert listed.exit_id == placed.exit_id
    assert listed.status is ExitStatus.TRIGGERED_TARGET
    assert listed.exit_price == 111.0
    assert await broker.positions() == []
    refused = [o for o in await broker.list_orders() if o.status is OrderStatus.REJECTED]
    assert len(refused) == 1 and "Insufficient holdings" in refused[0].message


async def test_a_half_built_exit_is_visible_and_completed_by_the_retry(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    await _hold(broker, sandbox, instrument)
    sandbox.inject_fault("POST", "/v3/order/gtt/place", 503, after=1)
    with pytest.raises(Exception, match="HTTP 503"):
        await broker.place_exit_oco(_request(instrument))
    [half] = await broker.list_exits()
    assert half.exit_id.endswith("+") and half.status is ExitStatus.CANCELLED  # not protecting: not ACTIVE
    assert await broker.find_exit(_request(instrument)) is None
    with pytest.raises(OrderRejected, match="lacks a leg"):
        await broker.modify_exit(half.exit_id, _request(instrument))
    done = await broker.place_exit_oco(_request(instrument))
    assert done.exit_id.startswith(half.exit_id) and done.status is ExitStatus.ACTIVE
    assert len(sandbox.gtts) == 2


async def test_a_refused_target_leg_takes_the_new_stop_leg_back(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    await _hold(broker, sandbox, instrument)
    sandbox.set_last_price(instrument.instrument_key, 112.0)  # the market moved past the target meanwhile
    with pytest.raises(OrderRejected, match="above the LTP"):
        await broker.place_exit_oco(_request(instrument))
    assert [gtt["rules"][0]["status"] for gtt in sandbox.gtts.values()] == ["CANCELLED"]


async def test_a_restarted_broker_rebuilds_the_same_exit_ids(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, instrument: Instrument
) -> None:
    await _hold(broker, sandbox, instrument)
    first = await broker.place_exit_oco(_request(instrument))
    await broker.cancel_exit(first.exit_id)
    second = await broker.place_exit_oco(_request(instrument, stop=96.0, target=111.0))
    restarted = UpstoxBroker(make_config(sandbox, order_url), clock, instruments=[instrument])
    listed = {e.exit_id: e for e in await restarted.list_exits()}
    await restarted.close()
    assert listed[first.exit_id].status is ExitStatus.CANCELLED
    assert listed[second.exit_id].status is ExitStatus.ACTIVE
    assert (listed[second.exit_id].stop_limit, listed[second.exit_id].target_limit) == (95.5, 110.4)


async def test_fills_carry_our_client_order_id(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    await _hold(broker, sandbox, instrument)
    [fill] = await broker.fills()
    assert fill.client_order_id == make_client_order_id(date(2024, 6, 4), "hold")
    assert (fill.side, fill.quantity, fill.price) == (Side.BUY, 10, 100.0)


async def test_a_waiting_leg_orphaned_by_hand_is_reused_by_the_next_exit(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    first, stop_id, target_id = await _protected(broker, sandbox, instrument)
    await broker._run(broker.client.cancel_gtt, target_id)  # by hand, and nobody listed exits since
    again = await broker.place_exit_oco(_request(instrument))
    assert again.exit_id.startswith(f"{stop_id}+") and again.exit_id != first.exit_id
    listed = {e.exit_id: e.status for e in await broker.list_exits()}
    assert listed == {again.exit_id: ExitStatus.ACTIVE, f"+{target_id}": ExitStatus.CANCELLED}
    waiting = [gtt_id for gtt_id, gtt in sandbox.gtts.items() if gtt["rules"][0]["status"] == "SCHEDULED"]
    assert sorted(waiting) == sorted(again.exit_id.split("+"))


async def test_positions_include_holdings_from_earlier_days(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    sandbox.set_holding(instrument.instrument_key, 10, 90.0)
    await _hold(broker, sandbox, instrument)  # 10 more today at 100
    [position] = await broker.positions()
    assert (position.quantity, position.average_price) == (20, 95.0)
    placed = await broker.place_exit_oco(
        exit_request_for(instrument, 20, stop=95.0, target=110.0, last_price=100.0, tag="HELD")
    )
    sandbox.set_last_price(instrument.instrument_key, 111.0)
    [fired] = await broker.list_exits()
    assert (fired.exit_id, fired.status) == (placed.exit_id, ExitStatus.TRIGGERED_TARGET)
    assert await broker.positions() == []
