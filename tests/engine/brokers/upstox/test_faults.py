"""Faults between us and Upstox never duplicate an order or an exit leg.

`submit_with_lookup` follows the order manager's protocol (engine/execution: retry only a
TemporaryBrokerError, and only after looking the tag up) with a NEW broker for every attempt, as
after a restart, so only `find_order` (not the adapter's in-process memory) prevents a resend."""

from __future__ import annotations

from datetime import date

import pytest

from engine.brokers.base import TemporaryBrokerError
from engine.brokers.upstox import UpstoxBroker
from engine.brokers.upstox.sandbox import Fault, UpstoxSandbox
from engine.clock import SteppedClock
from engine.execution import exit_request_for, make_client_order_id
from engine.models import ExitOrder, ExitRequest, ExitStatus, Instrument, Order, OrderIntent, OrderStatus, Side
from tests.engine.brokers.upstox.conftest import make_config

PLACE = ("POST", "/v3/order/place")
GTT_PLACE = ("POST", "/v3/order/gtt/place")
ORDER_BOOK = ("GET", "/v2/order/retrieve-all")


async def submit_with_lookup(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, intent: OrderIntent, attempts: int = 5
) -> tuple[Order, list[str]]:
    """Place `intent` the order manager's way; returns the order and the errors met on the way."""
    errors: list[str] = []
    for attempt in range(attempts):
        broker = UpstoxBroker(make_config(sandbox, order_url), clock)
        try:
            if attempt:
                found = await broker.find_order(intent.client_order_id)
                if found is not None:
                    return found, errors
            return await broker.place_order(intent), errors
        except TemporaryBrokerError as exc:
            errors.append(str(exc))
        finally:
            await broker.close()
    raise AssertionError(f"not placed after {attempts} attempts: {errors}")


def _intent(instrument: Instrument, key: str) -> OrderIntent:
    return OrderIntent(make_client_order_id(date(2024, 6, 4), key), instrument, Side.BUY, 10)


@pytest.mark.parametrize(
    ("fault", "times", "acted"),
    [
        (Fault.RATE_LIMIT, 2, False),
        (Fault.SERVER_ERROR, 1, False),
        (Fault.TIMEOUT_AFTER_ACCEPT, 1, True),
        (Fault.DROP_RESPONSE, 1, True),
    ],
)
async def test_order_exists_exactly_once_after_a_fault_on_place(
    sandbox: UpstoxSandbox,
    order_url: str,
    clock: SteppedClock,
    instrument: Instrument,
    fault: Fault,
    times: int,
    acted: bool,
) -> None:
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    sandbox.inject_fault(*PLACE, fault, times=times)
    intent = _intent(instrument, f"fault-{fault}")
    order, errors = await submit_with_lookup(sandbox, order_url, clock, intent)
    assert len(errors) == times
    [row] = sandbox.orders_tagged(intent.client_order_id)
    assert order.broker_order_id == row["order_id"]
    # refused faults were resent (once per fault); accepted ones were found by tag, not resent
    assert sandbox.calls(*PLACE) == (1 if acted else times + 1)
    if acted:
        assert order.status is OrderStatus.FILLED and order.client_order_id == intent.client_order_id


async def test_a_failed_lookup_is_retried_before_any_resend(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, instrument: Instrument
) -> None:
    sandbox.inject_fault(*PLACE, Fault.TIMEOUT_AFTER_ACCEPT)
    sandbox.inject_fault(*ORDER_BOOK, 500)
    sandbox.inject_fault(*ORDER_BOOK, Fault.DROP_RESPONSE)
    intent = _intent(instrument, "lookup-fails")
    order, errors = await submit_with_lookup(sandbox, order_url, clock, intent)
    assert len(errors) == 3
    assert len(sandbox.orders_tagged(intent.client_order_id)) == 1
    assert sandbox.calls(*PLACE) == 1
    assert order.client_order_id == intent.client_order_id


async def test_same_broker_does_not_resend_a_tag_it_already_sent(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    sandbox.inject_fault(*PLACE, Fault.DROP_RESPONSE)
    intent = _intent(instrument, "in-process")
    with pytest.raises(TemporaryBrokerError, match="no answer"):
        await broker.place_order(intent)
    again = await broker.place_order(intent)  # a careless caller retrying blindly
    [row] = sandbox.orders_tagged(intent.client_order_id)
    assert again.broker_order_id == row["order_id"]
    assert sandbox.calls(*PLACE) == 1


async def test_timeout_is_reported_as_temporary_within_the_read_timeout(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    sandbox.inject_fault(*PLACE, Fault.TIMEOUT_AFTER_ACCEPT)
    with pytest.raises(TemporaryBrokerError, match="Timeout"):
        await broker.place_order(_intent(instrument, "slow"))


async def test_sdk_does_not_silently_resend_a_put_or_delete(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    request = exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="PUT")
    placed = await broker.place_exit_oco(request)
    sandbox.inject_fault("PUT", "/v3/order/gtt/modify", Fault.DROP_RESPONSE)
    moved = exit_request_for(instrument, 10, stop=96.0, target=110.0, last_price=100.0, tag="PUT")
    with pytest.raises(TemporaryBrokerError):
        await broker.modify_exit(placed.exit_id, moved)
    assert sandbox.calls("PUT", "/v3/order/gtt/modify") == 1  # urllib3's own retry is off
    sandbox.inject_fault("DELETE", "/v3/order/gtt/cancel", Fault.DROP_RESPONSE)
    with pytest.raises(TemporaryBrokerError):
        await broker.cancel_exit(placed.exit_id)
    assert sandbox.calls("DELETE", "/v3/order/gtt/cancel") == 1


def _exit_request(instrument: Instrument) -> ExitRequest:
    return exit_request_for(instrument, 10, stop=95.0, target=110.0, last_price=100.0, tag="EXITFAULT")


async def _place_exit_with_retries(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, request: ExitRequest
) -> tuple[ExitOrder, list[TemporaryBrokerError]]:
    """Place an exit, retrying temporary errors with a fresh broker each time (no lookup needed:
    `place_exit_oco` itself reuses live legs an earlier attempt created)."""
    errors: list[TemporaryBrokerError] = []
    for _ in range(4):
        broker = UpstoxBroker(make_config(sandbox, order_url), clock)
        try:
            return await broker.place_exit_oco(request), errors
        except TemporaryBrokerError as exc:
            errors.append(exc)
        finally:
            await broker.close()
    raise AssertionError(errors)


@pytest.mark.parametrize(
    ("fault", "after"),
    [
        (Fault.DROP_RESPONSE, 0),  # the stop leg was created, its answer lost
        (Fault.TIMEOUT_AFTER_ACCEPT, 1),  # the target leg was created, its answer late
        (Fault.SERVER_ERROR, 1),  # the target leg was refused: a half exit until the retry
        (Fault.RATE_LIMIT, 0),
    ],
)
async def test_exit_legs_exist_exactly_once_after_a_fault(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, instrument: Instrument, fault: Fault, after: int
) -> None:
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    sandbox.inject_fault(*GTT_PLACE, fault, after=after)
    exit_order, errors = await _place_exit_with_retries(sandbox, order_url, clock, _exit_request(instrument))
    assert len(errors) == 1
    assert len(sandbox.gtts) == 2
    assert exit_order.status is ExitStatus.ACTIVE
    assert set(exit_order.exit_id.split("+")) == set(sandbox.gtts)
    broker = UpstoxBroker(make_config(sandbox, order_url), clock)
    [listed] = await broker.list_exits()
    assert listed.exit_id == exit_order.exit_id and listed.status is ExitStatus.ACTIVE
    await broker.close()
