"""The Kite parsers (`engine/brokers/zerodha/parse.py`) on Zerodha's published payloads, read
through the real `kiteconnect` client (`ZerodhaBroker` → `KiteClient` → `KiteConnect(root=…)`)
from a loopback server that answers with the recorded bodies (`kite_mocks.py`), so the SDK's
own conversions (timestamps to naive datetimes) are part of what is tested."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest

from engine.brokers.zerodha import parse
from engine.brokers.zerodha.config import ZerodhaConfig
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.login import exchange_request_token
from engine.clock import SteppedClock
from engine.execution import exit_request_for
from engine.models import IST, ExitStatus, Instrument, OrderIntent, OrderStatus, OrderType, Product, Side
from tests.engine.brokers.zerodha.kite_mocks import KiteMockServer, mock_data

IST_OFFSET = timedelta(hours=5, minutes=30)


def _ist(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=IST)


def _key_of(symbol: str) -> str:
    return f"NSE:{symbol}"


@pytest.fixture
def mocks() -> Iterator[KiteMockServer]:
    with KiteMockServer() as server:
        yield server


async def _broker(mocks: KiteMockServer, clock: SteppedClock, product: Product) -> ZerodhaBroker:
    config = ZerodhaConfig(api_key="mock_api_key", access_token="mock_access_token", root_url=mocks.url,
                           product=product)
    return ZerodhaBroker(config, clock)


@pytest.fixture
async def broker(mocks: KiteMockServer, clock: SteppedClock) -> AsyncIterator[ZerodhaBroker]:
    kite = await _broker(mocks, clock, Product.CNC)
    await kite.connect()  # GET /user/profile (profile.json)
    yield kite
    await kite.close()


async def test_profile_answers_the_connect_check(broker: ZerodhaBroker, mocks: KiteMockServer) -> None:
    assert mocks.requests[0] == ("GET", "/user/profile")
    assert broker.client.profile()["user_id"] == "AB1234"


async def test_order_book_statuses_prices_and_times(broker: ZerodhaBroker) -> None:
    orders = await broker.list_orders()
    assert [o.broker_order_id for o in orders][:4] == ["100000000000000", "300000000000000", "500000000000000",
                                                       "220524001859672"]
    assert orders[-2].broker_order_id == "1953341975595868160"  # a 19-digit id stays an exact string
    assert [o.status for o in orders] == [
        OrderStatus.CANCELLED, OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.REJECTED, OrderStatus.FILLED,
        OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.CANCELLED, OrderStatus.FILLED, OrderStatus.FILLED]
    cancelled, limit_buy, market_sell, rejected = orders[:4]
    assert (cancelled.instrument_key, cancelled.side, cancelled.order_type, cancelled.quantity,
            cancelled.price, cancelled.filled_quantity) == ("NSE:USDINR21JUNFUT", Side.BUY, OrderType.LIMIT, 1,
                                                           72.0, 0)
    assert cancelled.updated_at == _ist("2021-05-31 09:18:58")  # exchange_update_timestamp (a string in the SDK)
    assert (limit_buy.filled_quantity, limit_buy.average_price, limit_buy.price) == (1, 109.4, 109.4)
    assert (market_sell.side, market_sell.order_type, market_sell.price, market_sell.average_price) == (
        Side.SELL, OrderType.MARKET, None, 109.35)
    assert (rejected.client_order_id, rejected.quantity, rejected.price) == ("icebergord", 200, 463.0)
    assert rejected.message.startswith("Insufficient funds. Required margin is 95417.84")
    assert rejected.updated_at == _ist("2022-05-24 12:26:52")  # no exchange time: the order's (a datetime)
    assert all(o.updated_at is not None and o.updated_at.utcoffset() == IST_OFFSET for o in orders)
    assert orders[0].client_order_id == ""  # "tag": null


async def test_order_history_latest_state_and_every_intermediate_status(broker: ZerodhaBroker) -> None:
    order = await broker.get_order("171229000724687")
    assert order is not None
    assert (order.broker_order_id, order.status, order.price, order.quantity, order.filled_quantity) == (
        "171229000724687", OrderStatus.OPEN, 300.1, 1, 0)
    assert order.updated_at == _ist("2017-12-29 11:08:16")
    history = broker.client.order_history("171229000724687")
    assert [row["status"] for row in history][:3] == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING"]
    assert {parse.order_from_kite(row, _key_of).status for row in history} == {OrderStatus.OPEN}


async def test_trade_book_fills_with_ids_prices_and_ist_times(broker: ZerodhaBroker) -> None:
    fills = await broker.fills()
    assert [(f.fill_id, f.broker_order_id, f.instrument_key, f.side, f.quantity, f.price) for f in fills] == [
        ("10000000", "200000000000000", "NSE:SBIN", Side.BUY, 1, 420.65),
        ("40000000", "500000000000000", "NSE:USDINR21JUNFUT", Side.BUY, 1, 72.755),
        ("70000000", "800000000000000", "NSE:GOLDPETAL21JUNFUT", Side.BUY, 1, 4852.0),
        ("90000000", "1100000000000000", "NSE:GOLDPETAL21JUNFUT", Side.BUY, 1, 4852.0)]
    assert [f.ts for f in fills] == [_ist("2021-05-31 09:16:39"), _ist("2021-05-31 11:18:27"),
                                     _ist("2021-05-31 16:00:36"), _ist("2021-05-31 16:08:41")]


async def test_an_orders_trades(broker: ZerodhaBroker, clock: SteppedClock) -> None:
    rows = broker.client.kite.order_trades("200000000000000")
    fills = parse.fills_from_kite(rows, _key_of, received_at=clock.now())
    assert [(f.fill_id, f.quantity, f.price, f.ts) for f in fills] == [
        ("10000000", 1, 4852.0, _ist("2021-05-31 16:00:36"))]


def test_a_trade_with_only_kites_time_of_day_order_timestamp_is_dated_when_received() -> None:
    """In the trade book `order_timestamp` is a time of day ("09:16:39"), not a date and time."""
    row = {**mock_data("trades.json")[0], "fill_timestamp": None, "exchange_timestamp": None}
    received = _ist("2024-06-04 10:00:00")
    assert parse.fills_from_kite([row], _key_of, received_at=received)[0].ts == received


async def test_positions_are_the_holdings_plus_todays_net_of_our_product(broker: ZerodhaBroker) -> None:
    positions = await broker.positions()  # net rows are NRML and CO: not ours
    assert [(p.instrument_key, p.quantity) for p in positions] == [("NSE:AARON", 1), ("NSE:SBIN", 16)]
    assert [p.average_price for p in positions] == [161.0, pytest.approx(801.78125, abs=1e-4)]


async def test_intraday_positions_skip_holdings_and_other_products(
    mocks: KiteMockServer, clock: SteppedClock
) -> None:
    broker = await _broker(mocks, clock, Product.MIS)
    try:
        assert await broker.positions() == []
        assert ("GET", "/portfolio/holdings") not in mocks.requests
    finally:
        await broker.close()
    net = mock_data("positions.json")
    mis_row = {**net["net"][0], "product": "MIS", "tradingsymbol": "SBIN", "quantity": 5, "average_price": 800.5}
    positions = parse.positions_from_kite({"net": [mis_row]}, [], _key_of, Product.MIS)
    assert [(p.instrument_key, p.quantity, p.average_price) for p in positions] == [("NSE:SBIN", 5, 800.5)]


async def test_gtt_list_keeps_two_leg_exits_and_surfaces_a_rejected_leg(broker: ZerodhaBroker) -> None:
    exits = await broker.list_exits()  # the single-leg INFY trigger is not one of ours
    assert len(exits) == 1
    rain = exits[0]
    assert (rain.exit_id, rain.instrument_key, rain.quantity) == ("105099", "NSE:RAIN", 1)
    assert (rain.stop_trigger, rain.stop_limit, rain.target_trigger, rain.target_limit) == (102.0, 1.0, 103.7, 1.0)
    assert rain.updated_at == _ist("2019-09-09 15:15:08")
    assert rain.status is ExitStatus.REJECTED  # the fired leg's order failed: no order, nothing to wait for
    assert rain.triggered_order_id is None
    assert rain.message == ("target leg rejected: Your order price is lower than the current lower circuit "
                            "limit of 70.65. Place an order within the daily range.")


def test_one_gtt_payload_parses_alike() -> None:
    exit_order = parse.exit_from_gtt(mock_data("gtt_get_order.json"), _key_of)
    assert (exit_order.exit_id, exit_order.status, exit_order.triggered_order_id) == ("123", ExitStatus.REJECTED, None)
    assert "lower circuit limit of 70.65" in exit_order.message


def test_a_gtt_leg_that_placed_its_order_is_triggered_with_that_order() -> None:
    row = mock_data("gtt_get_order.json")
    result = row["orders"][1]["result"]
    placed = {**result, "order_result": {"status": "success", "order_id": "190909000123456", "rejection_reason": ""}}
    row["orders"][1]["result"] = placed
    exit_order = parse.exit_from_gtt(row, _key_of)
    assert (exit_order.status, exit_order.triggered_order_id, exit_order.message) == (
        ExitStatus.TRIGGERED_TARGET, "190909000123456", "")


async def test_order_and_gtt_writes_return_kites_ids(broker: ZerodhaBroker, instrument: Instrument) -> None:
    intent = OrderIntent(client_order_id="ATMOCK0000000000001", instrument=instrument, side=Side.BUY, quantity=1,
                         order_type=OrderType.MARKET, product=Product.CNC)
    order = await broker.place_order(intent)
    assert (order.broker_order_id, order.client_order_id) == ("151220000000000", "ATMOCK0000000000001")
    request = exit_request_for(instrument, 1, stop=2850.0, target=3000.0, last_price=2900.0, tag="MOCKEXIT")
    placed = await broker.place_exit_oco(request)
    assert (placed.exit_id, placed.status) == ("123", ExitStatus.ACTIVE)
    assert (await broker.modify_exit("123", request)).exit_id == "123"
    await broker.cancel_exit("123")
    await broker.cancel_order("151220000000000")
    assert parse.trigger_id(mock_data("gtt_place_order.json")) == "123"


async def test_margins_give_the_equity_cash(broker: ZerodhaBroker) -> None:
    assert await broker.funds() == pytest.approx(99725.05)  # GET /user/margins/equity
    assert parse.funds_from_margins(broker.client.kite.margins()) == pytest.approx(99725.05)


def test_session_exchange_returns_the_access_token(mocks: KiteMockServer) -> None:
    token = exchange_request_token("mock_request_token", api_key="mock_api_key", api_secret="mock_secret",
                                   root_url=mocks.url)
    assert token == mock_data("generate_session.json")["access_token"]
    assert mocks.requests == [("POST", "/session/token")]
