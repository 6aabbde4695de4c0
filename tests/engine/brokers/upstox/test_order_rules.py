"""Upstox's order rules of 2026 (issue 13), on the adapter and the sandbox: the X-Algo-Name header
on every order request, each order API's rate limit (HTTP 429 UDAPI10005 beyond it) and the
optional `market_protection` of MARKET / SL-M orders (-1 or 0..25 percent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from engine.brokers.base import OrderRejected, TemporaryBrokerError
from engine.brokers.upstox import UpstoxBroker
from engine.brokers.upstox.client import UpstoxClient
from engine.brokers.upstox.sandbox import ALGO_NAME_HEADER, SANDBOX_ALGO_NAME, UpstoxSandbox
from engine.clock import SteppedClock
from engine.execution import exit_request_for, make_client_order_id
from engine.models import Instrument, OrderIntent, OrderType, Side
from tests.engine.brokers.upstox.conftest import TOKEN, make_config
from tests.engine.brokers.wire import request_json

DAY = date(2024, 6, 4)


def _intent(instrument: Instrument, name: str, order_type: OrderType = OrderType.MARKET,
            **prices: float) -> OrderIntent:
    return OrderIntent(make_client_order_id(DAY, name), instrument, Side.BUY, 1, order_type=order_type, **prices)  # type: ignore[arg-type]


@pytest.fixture
def unpaced(sandbox: UpstoxSandbox, order_url: str) -> Iterator[UpstoxClient]:
    """The SDK client alone: nothing paces its order requests."""
    client = UpstoxClient(make_config(sandbox, order_url))
    yield client
    client.close()


def _order_body(key: str, **fields: Any) -> dict[str, Any]:
    body = {"quantity": 1, "product": "D", "validity": "DAY", "price": 0.0, "instrument_token": key,
            "order_type": "MARKET", "transaction_type": "BUY", "disclosed_quantity": 0, "trigger_price": 0.0,
            "is_amo": False}
    return {**body, **fields}


# --- X-Algo-Name ------------------------------------------------------------------------------


async def test_every_order_request_of_the_adapter_carries_the_algo_name(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    """The sandbox refuses any order request without the header, so each call succeeding proves it."""
    assert broker.config.algo_name == sandbox.algo_name == SANDBOX_ALGO_NAME
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    resting = await broker.place_order(_intent(instrument, "algo-limit", OrderType.LIMIT, price=90.0))
    assert resting.broker_order_id is not None
    await broker.cancel_order(resting.broker_order_id)
    request = exit_request_for(instrument, 1, stop=95.0, target=110.0, last_price=100.0, tag="ALGO")
    placed = await broker.place_exit_oco(request)
    await broker.modify_exit(placed.exit_id, exit_request_for(instrument, 1, stop=96.0, target=110.0,
                                                             last_price=100.0, tag="ALGO"))
    await broker.cancel_exit(placed.exit_id)
    assert [row["status"] for row in sandbox.orders.values()] == ["cancelled"]
    assert {rule["status"] for gtt in sandbox.gtts.values() for rule in gtt["rules"]} == {"CANCELLED"}


@pytest.mark.parametrize("algo_name", [None, "someone-elses-algo"])
async def test_an_order_without_the_registered_algo_name_is_refused(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, instrument: Instrument, algo_name: str | None
) -> None:
    config = sandbox.config(order_url, access_token=TOKEN, algo_name=algo_name)
    broker = UpstoxBroker(config, clock, instruments=[instrument])
    try:
        with pytest.raises(OrderRejected, match=r"HTTP 400 .*X-Algo-Name"):
            await broker.place_order(_intent(instrument, "no-algo"))
        request = exit_request_for(instrument, 1, stop=95.0, target=110.0, last_price=100.0, tag="NOALGO")
        with pytest.raises(OrderRejected, match="X-Algo-Name"):
            await broker.place_exit_oco(request)
        assert await broker.list_orders() == []  # reads need no algo name
    finally:
        await broker.close()
    assert sandbox.orders == {} and sandbox.gtts == {}


def test_the_raw_error_names_the_header(sandbox: UpstoxSandbox) -> None:
    body = json.dumps(_order_body("NSE_EQ|INE002A01018")).encode()
    status, payload = request_json(f"{sandbox.url}/v3/order/place", "POST", body, {"Authorization": f"Bearer {TOKEN}"})
    [error] = payload["errors"]
    assert (status, payload["status"], error["propertyPath"], error["invalidValue"]) == (400, "error",
                                                                                       ALGO_NAME_HEADER, None)
    status, _ = request_json(f"{sandbox.url}/v3/order/place", "POST", body,
                             {"Authorization": f"Bearer {TOKEN}", ALGO_NAME_HEADER: SANDBOX_ALGO_NAME})
    assert status == 200


# --- rate limits ----------------------------------------------------------------------------


def test_each_order_api_answers_429_beyond_its_rate_until_a_second_passed(
    unpaced: UpstoxClient, sandbox: UpstoxSandbox, clock: SteppedClock
) -> None:
    key = "NSE_EQ|INE002A01018"
    sandbox.set_last_price(key, 100.0)
    placed = [unpaced.place_order(_order_body(key, tag=f"R{n}"))["order_ids"][0] for n in range(10)]
    assert len(set(placed)) == 10
    with pytest.raises(TemporaryBrokerError, match="HTTP 429 UDAPI10005: Too Many Request Sent"):
        unpaced.place_order(_order_body(key, tag="R10"))
    assert len(sandbox.orders) == 10  # the refused request was not acted on
    gtt = {"type": "SINGLE", "quantity": 1, "product": "D", "instrument_token": key, "transaction_type": "BUY",
           "rules": [{"strategy": "ENTRY", "trigger_type": "BELOW", "trigger_price": 90.0}]}
    assert unpaced.place_gtt(gtt)["gtt_order_ids"]  # another API counts on its own
    assert unpaced.order_book()  # reads are not order APIs
    clock.advance(1.0)
    assert unpaced.place_order(_order_body(key, tag="R11"))["order_ids"]


async def test_the_adapter_paces_each_order_api_on_the_clock(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, clock: SteppedClock, instrument: Instrument
) -> None:
    """Twelve orders and six exits (twelve GTT legs) at one instant: none meets a 429, because the
    adapter waits (on the clock) for the next second after the tenth request of each API."""
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    start = clock.now()
    for n in range(12):
        await broker.place_order(_intent(instrument, f"pace-{n}"))
    assert clock.now() - start == timedelta(seconds=1)
    for n in range(6):
        await broker.place_exit_oco(exit_request_for(instrument, 1, stop=95.0 - n, target=110.0 + n,
                                                     last_price=100.0, tag=f"P{n}"))
    assert len(sandbox.orders) == 12 and len(sandbox.gtts) == 12
    assert clock.now() - start == timedelta(seconds=2)


# --- market protection ----------------------------------------------------------------------


async def test_market_and_sl_m_orders_carry_the_configured_protection_and_limit_orders_do_not(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, instrument: Instrument
) -> None:
    broker = UpstoxBroker(sandbox.config(order_url, access_token=TOKEN, market_protection=3.0), clock,
                          instruments=[instrument])
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    try:
        sent = [await broker.place_order(_intent(instrument, "mp-market")),
                await broker.place_order(_intent(instrument, "mp-slm", OrderType.SL_M, trigger_price=105.0)),
                await broker.place_order(_intent(instrument, "mp-limit", OrderType.LIMIT, price=99.0))]
    finally:
        await broker.close()
    protections = [sandbox.exchange.orders[str(order.broker_order_id)].market_protection for order in sent]
    assert protections == [3.0, 3.0, None]


@pytest.mark.parametrize(("protection", "applied"), [(None, None), (0, None), (25, 25.0), (-1, 2.0),
                                                     (25.5, "refused"), (-2, "refused"), ("3", "refused")])
def test_the_sandbox_takes_market_protection_as_upstox_documents_it(
    unpaced: UpstoxClient, sandbox: UpstoxSandbox, protection: Any, applied: float | str | None
) -> None:
    """Optional; up to 25 percent; -1 is Upstox's automatic percent (2 % for a ₹100 equity)."""
    sandbox.set_last_price("NSE_EQ|INE002A01018", 100.0)
    body = json.dumps(_order_body("NSE_EQ|INE002A01018", market_protection=protection)).encode()
    status, payload = request_json(f"{sandbox.url}/v3/order/place", "POST", body,
                                   {"Authorization": f"Bearer {TOKEN}", ALGO_NAME_HEADER: SANDBOX_ALGO_NAME})
    if applied != "refused":
        assert status == 200
        assert sandbox.exchange.orders[payload["data"]["order_ids"][0]].market_protection == applied
        return
    [error] = payload["errors"]
    assert (status, error["errorCode"], error["propertyPath"], error["invalidValue"]) == (
        400, "UDAPI100036", "market_protection", protection)
    gtt = {"type": "SINGLE", "quantity": 1, "product": "D", "instrument_token": "NSE_EQ|INE002A01018",
           "transaction_type": "BUY",
           "rules": [{"strategy": "ENTRY", "trigger_type": "IMMEDIATE", "trigger_price": 9.0,
                      "market_protection": protection}]}
    with pytest.raises(OrderRejected, match="market_protection"):
        unpaced.place_gtt(gtt)
