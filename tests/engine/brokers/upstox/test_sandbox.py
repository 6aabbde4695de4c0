"""The loopback Upstox server's own contract, driven by the real SDK (UpstoxClient) and raw HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from engine.brokers.base import OrderRejected
from engine.brokers.upstox.client import UpstoxClient
from engine.brokers.upstox.sandbox import ALGO_NAME_HEADER, SANDBOX_ALGO_NAME, UpstoxSandbox
from engine.clock import SteppedClock
from engine.models import IST
from engine.sim.models import FillModel
from tests.engine.brokers.upstox.conftest import TOKEN, make_config
from tests.engine.brokers.wire import request_json

KEY = "NSE_EQ|INE669E01016"


@pytest.fixture
def client(sandbox: UpstoxSandbox, order_url: str) -> Iterator[UpstoxClient]:
    upstox = UpstoxClient(make_config(sandbox, order_url))
    yield upstox
    upstox.close()


def _order(side: str = "BUY", product: str = "D", quantity: int = 10, **fields: Any) -> dict[str, Any]:
    body = {
        "quantity": quantity,
        "product": product,
        "validity": "DAY",
        "price": 0.0,
        "tag": "T",
        "instrument_token": KEY,
        "order_type": "MARKET",
        "transaction_type": side,
        "disclosed_quantity": 0,
        "trigger_price": 0.0,
        "is_amo": False,
        "slice": False,
    }
    return {**body, **fields}


def _raw(url: str, method: str, body: bytes | None = None, token: str = TOKEN,
         algo_name: str | None = SANDBOX_ALGO_NAME) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    if algo_name is not None:
        headers[ALGO_NAME_HEADER] = algo_name
    return request_json(url, method, body, headers)


def test_multiple_gtt_arms_target_and_stoploss_after_the_entry_fills(
    client: UpstoxClient, sandbox: UpstoxSandbox
) -> None:
    sandbox.set_last_price(KEY, 8.0)
    body = {
        "type": "MULTIPLE",
        "quantity": 100,
        "product": "I",
        "instrument_token": KEY,
        "transaction_type": "BUY",
        "rules": [
            {"strategy": "ENTRY", "trigger_type": "BELOW", "trigger_price": 7.5},
            {"strategy": "TARGET", "trigger_type": "IMMEDIATE", "trigger_price": 8.5},
            {"strategy": "STOPLOSS", "trigger_type": "IMMEDIATE", "trigger_price": 7.0},
        ],
    }
    [gtt_id] = client.place_gtt(body)["gtt_order_ids"]

    def statuses() -> list[tuple[str, str]]:
        [gtt] = client.gtts(gtt_id)
        return [(rule["strategy"], rule["status"]) for rule in gtt["rules"]]

    assert statuses() == [("ENTRY", "SCHEDULED"), ("TARGET", "PENDING"), ("STOPLOSS", "PENDING")]
    sandbox.set_last_price(KEY, 8.6)  # above the target, but nothing is bought yet
    assert statuses() == [("ENTRY", "SCHEDULED"), ("TARGET", "PENDING"), ("STOPLOSS", "PENDING")]
    sandbox.set_last_price(KEY, 7.4)
    assert statuses() == [("ENTRY", "COMPLETED"), ("TARGET", "SCHEDULED"), ("STOPLOSS", "SCHEDULED")]
    sandbox.set_last_price(KEY, 8.55)
    assert statuses() == [("ENTRY", "COMPLETED"), ("TARGET", "COMPLETED"), ("STOPLOSS", "CANCELLED")]
    [position] = client.positions()
    assert (position["quantity"], position["day_buy_quantity"], position["day_sell_quantity"]) == (0, 100, 100)
    assert position["realised"] == pytest.approx(100 * (8.55 - 7.4))


@pytest.mark.parametrize(
    ("gtt_type", "rules", "message"),
    [
        ("SINGLE", [{"strategy": "TARGET", "trigger_type": "ABOVE", "trigger_price": 9.0}], "exactly one ENTRY"),
        (
            "SINGLE",
            [
                {"strategy": "ENTRY", "trigger_type": "ABOVE", "trigger_price": 9.0},
                {"strategy": "TARGET", "trigger_type": "IMMEDIATE", "trigger_price": 9.5},
            ],
            "SINGLE GTT has one rule",
        ),
        ("SINGLE", [{"strategy": "ENTRY", "trigger_type": "BELOW", "trigger_price": 9.0}], "below the LTP"),
    ],
)
def test_gtt_validation_answers_400_with_the_field(
    client: UpstoxClient, sandbox: UpstoxSandbox, gtt_type: str, rules: list[dict[str, Any]], message: str
) -> None:
    sandbox.set_last_price(KEY, 8.0)
    body = {"type": gtt_type, "quantity": 1, "product": "D", "instrument_token": KEY, "transaction_type": "SELL"}
    with pytest.raises(OrderRejected, match=message):
        client.place_gtt({**body, "rules": rules})
    assert sandbox.gtts == {}


def test_delivery_sell_needs_holdings(client: UpstoxClient, sandbox: UpstoxSandbox) -> None:
    sandbox.set_last_price(KEY, 8.0)
    [refused] = client.place_order(_order("SELL"))["order_ids"]
    assert client.order_details(refused)["status"] == "rejected"
    sandbox.set_holding(KEY, 10)
    [sold] = client.place_order(_order("SELL"))["order_ids"]
    assert client.order_details(sold)["status"] == "complete"
    [intraday_short] = client.place_order(_order("SELL", product="I"))["order_ids"]
    assert client.order_details(intraday_short)["status"] == "complete"


def test_limit_and_stop_orders_wait_for_their_price(client: UpstoxClient, sandbox: UpstoxSandbox) -> None:
    sandbox.set_last_price(KEY, 8.0)
    [limit] = client.place_order(_order(order_type="LIMIT", price=7.5))["order_ids"]
    [stop] = client.place_order(_order(order_type="SL-M", trigger_price=8.5))["order_ids"]
    assert [client.order_details(i)["status"] for i in (limit, stop)] == ["open", "trigger pending"]
    sandbox.set_last_price(KEY, 8.6)
    assert [client.order_details(i)["status"] for i in (limit, stop)] == ["open", "complete"]
    sandbox.set_last_price(KEY, 7.45)
    assert client.order_details(limit)["average_price"] == 7.45
    [trade_a, trade_b] = client.trades()
    assert {trade_a["order_id"], trade_b["order_id"]} == {limit, stop}


def test_order_history_by_tag(sandbox: UpstoxSandbox, client: UpstoxClient) -> None:
    client.place_order(_order(tag="MYTAG"))
    status, payload = _raw(f"{sandbox.url}/v2/order/history?tag=MYTAG", "GET")
    assert status == 200 and [row["tag"] for row in payload["data"]] == ["MYTAG"]


def test_errors_have_upstox_envelopes(sandbox: UpstoxSandbox) -> None:
    status, payload = _raw(f"{sandbox.url}/v2/order/retrieve-all", "GET", token="nope")
    assert status == 401 and payload["status"] == "error"
    assert payload["errors"][0]["errorCode"] == "UDAPI100050"
    status, payload = _raw(f"{sandbox.url}/v2/no/such/path", "GET")
    assert (status, payload["errors"][0]["errorCode"]) == (404, "UDAPI10000")
    status, payload = _raw(f"{sandbox.url}/v3/order/place", "POST", b"{not json")
    assert (status, payload["errors"][0]["propertyPath"]) == (400, "body")
    status, payload = _raw(f"{sandbox.url}/v3/order/place", "POST", json.dumps(_order(quantity=0)).encode())
    assert (status, payload["errors"][0]["propertyPath"], payload["errors"][0]["invalidValue"]) == (400, "quantity", 0)


def test_price_feed_endpoint_for_a_sandbox_in_its_own_process(sandbox: UpstoxSandbox, client: UpstoxClient) -> None:
    [order_id] = client.place_order(_order())["order_ids"]
    status, _ = _raw(
        f"{sandbox.url}/sandbox/last-price", "POST", json.dumps({"instrument_key": KEY, "price": 8.25}).encode()
    )
    assert status == 200
    assert client.order_details(order_id)["average_price"] == 8.25


def test_start_and_stop_free_the_ports(sandbox: UpstoxSandbox) -> None:
    second = sandbox.listen()
    assert second != sandbox.url
    sandbox.stop()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sandbox.url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{second}/v2/order/retrieve-all", timeout=2)


def test_partial_fills_are_numbered_trades_and_the_position_sums_them() -> None:
    """Two partial fills of one order are two trades, T<id> then T<id>-2; the position holds both."""
    clock = SteppedClock(datetime(2024, 6, 3, 10, 0, tzinfo=IST))
    sandbox = UpstoxSandbox(access_token=TOKEN, clock=clock, fill_model=FillModel(partial_fill_ratio=0.5))
    sandbox.set_last_price(KEY, 100.0)
    order_id = sandbox.dispatch("POST", "/v3/order/place", {}, _order(quantity=10))["order_ids"][0]
    sandbox.set_last_price(KEY, 100.0)
    trades = [t for t in sandbox.trades if t["order_id"] == order_id]
    assert [(t["trade_id"], t["quantity"], t["average_price"]) for t in trades] == [
        (f"T{order_id}", 5, 100.0), (f"T{order_id}-2", 5, 100.0)]
    assert [(p["quantity"], p["buy_price"]) for p in sandbox.dispatch("GET", "/v2/portfolio/short-term-positions",
                                                                      {}, None)] == [(10, 100.0)]
