"""The Kite sandbox answers in Kite's shapes: for each endpoint it serves, every field of Zerodha's
published response (`resources/`) is present with the same JSON type (extra fields allowed). A
field Kite shows as null in some row may be null; a list's rows are checked against all of the
mock's rows together (a key is required when every mock row has it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.clock import SteppedClock
from engine.execution import exit_request_for
from engine.models import IST, Instrument, OrderIntent, OrderType, Product, Side
from tests.engine.brokers.wire import request_json
from tests.engine.brokers.zerodha.kite_mocks import mock_data


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def shape_errors(examples: list[Any], actual: Any, path: str = "data") -> list[str]:
    """How `actual` differs in shape from the mock values `examples` (one position of the mock)."""
    if actual is None:
        return [] if any(e is None for e in examples) or not examples else [
            f"{path}: null, Kite sends {sorted({_json_type(e) for e in examples})}"]
    typed = [e for e in examples if e is not None]
    if not typed:
        return []  # Kite only showed null here: its type is unknown
    candidates = [e for e in typed if _json_type(e) == _json_type(actual)]
    if not candidates:
        return [f"{path}: {_json_type(actual)}, Kite sends {sorted({_json_type(e) for e in typed})}"]
    if isinstance(actual, dict):
        required = set.intersection(*(set(c) for c in candidates))
        errors = [f"{path}.{key}: missing" for key in sorted(required - set(actual))]
        for key, value in actual.items():
            known = [c[key] for c in candidates if key in c]
            if known:
                errors += shape_errors(known, value, f"{path}.{key}")
        return errors
    if isinstance(actual, list):
        elements = [element for c in candidates for element in c]
        return [error for i, element in enumerate(actual) for error in shape_errors(elements, element, f"{path}[{i}]")]
    return []


def assert_shape(mock: Any, actual: Any) -> None:
    errors = shape_errors([mock], actual)
    assert errors == [], "\n".join(errors)


def test_the_shape_comparison_can_fail() -> None:
    mock = {"trade_id": "1", "instrument_token": 779521, "result": None, "orders": [{"result": {"a": 1}}]}
    assert shape_errors([mock], {**mock, "trade_id": 1}) == ["data.trade_id: number, Kite sends ['string']"]
    assert shape_errors([mock], {**mock, "instrument_token": "779521"}) == [
        "data.instrument_token: string, Kite sends ['number']"]
    leg_without_result = {"trade_id": "1", "instrument_token": 1, "result": 3, "orders": [{"result": None}]}
    assert shape_errors([mock], leg_without_result) == ["data.orders[0].result: null, Kite sends ['object']"]
    assert shape_errors([mock], {"trade_id": "1", "orders": [{"result": {}}], "extra": 1}) == [
        "data.instrument_token: missing", "data.result: missing", "data.orders[0].result.a: missing"]


class _Wire:
    """Raw Kite requests against the sandbox (what the SDK would receive, before its conversions)."""

    def __init__(self, sandbox: KiteSandbox) -> None:
        self.sandbox = sandbox
        self.headers = {"X-Kite-Version": "3", "Authorization": f"token {sandbox.api_key}:{sandbox.access_token}"}

    def __call__(self, path: str, method: str = "GET", form: dict[str, Any] | None = None) -> Any:
        body = urlencode(form).encode() if form is not None else None
        headers = {**self.headers, "Content-Type": "application/x-www-form-urlencoded"} if body else self.headers
        status, answer = request_json(self.sandbox.url + path, method, body, headers)
        assert (status, answer["status"]) == (200, "success"), answer
        return answer["data"]


def _gtt_form(instrument: Instrument, stop: float, target: float) -> dict[str, str]:
    """The form `KiteConnect.place_gtt` posts for a 5-share two-leg exit around 2900."""
    request = exit_request_for(instrument, 5, stop=stop, target=target, last_price=2900.0, tag="SHAPE")
    legs = [{"exchange": "NSE", "tradingsymbol": instrument.symbol, "transaction_type": "SELL", "quantity": 5,
             "order_type": "LIMIT", "product": "CNC", "price": limit}
            for limit in (request.stop_limit, request.target_limit)]
    condition = {"exchange": "NSE", "tradingsymbol": instrument.symbol, "last_price": 2900.0,
                 "trigger_values": [request.stop_trigger, request.target_trigger]}
    return {"type": "two-leg", "orders": json.dumps(legs), "condition": json.dumps(condition)}


@pytest.fixture
def traded_sandbox(clock: SteppedClock, instrument: Instrument) -> Iterator[tuple[KiteSandbox, _Wire]]:
    """A sandbox after a filled buy, a working limit buy and two GTTs (one fired) on 2024-06-04."""
    with KiteSandbox(clock=clock, instruments=[instrument]) as sandbox:
        wire = _Wire(sandbox)
        sandbox.set_last_price("RELIANCE", 2900.0)
        for tag, order_type, priced in (("SHAPEBUY", "MARKET", {"market_protection": 2}),
                                        ("SHAPELIMIT", "LIMIT", {"price": 2500.0})):
            form = {"exchange": "NSE", "tradingsymbol": "RELIANCE", "transaction_type": "BUY", "quantity": 10,
                    "product": "CNC", "order_type": order_type, "validity": "DAY", "tag": tag, **priced}
            wire("/orders/regular", "POST", form)
        for stop, target in ((2850.0, 3000.0), (2700.0, 3100.0)):
            wire("/gtt/triggers", "POST", _gtt_form(instrument, stop, target))
        sandbox.set_last_price("RELIANCE", 2840.0)  # fires the first GTT's stop leg
        yield sandbox, wire


def test_order_book_and_history_rows_have_kites_fields(traded_sandbox: tuple[KiteSandbox, _Wire]) -> None:
    _, wire = traded_sandbox
    orders = wire("/orders")
    assert [o["tag"] for o in orders][:2] == ["SHAPEBUY", "SHAPELIMIT"]
    assert_shape(mock_data("orders.json"), orders)
    assert_shape(mock_data("order_info.json"), wire(f"/orders/{orders[1]['order_id']}"))


def test_trade_rows_have_kites_fields_and_time_of_day_order_timestamp(
    traded_sandbox: tuple[KiteSandbox, _Wire]
) -> None:
    _, wire = traded_sandbox
    trades = wire("/trades")
    assert len(trades) == 2  # the market buy and the GTT's stop leg
    assert_shape(mock_data("trades.json"), trades)
    assert_shape(mock_data("order_trades.json"), wire(f"/orders/{trades[0]['order_id']}/trades"))
    assert isinstance(trades[0]["trade_id"], str) and isinstance(trades[0]["instrument_token"], int)
    assert trades[0]["instrument_token"] == 738561  # the instrument's Kite token
    assert trades[0]["order_timestamp"] == "10:00:00" and trades[0]["fill_timestamp"] == "2024-06-04 10:00:00"


def test_gtt_rows_have_kites_fields_with_a_fired_legs_result(traded_sandbox: tuple[KiteSandbox, _Wire]) -> None:
    _, wire = traded_sandbox
    gtts = wire("/gtt/triggers")
    assert [g["status"] for g in gtts] == ["triggered", "active"]
    fired = gtts[0]["orders"][0]["result"]
    assert fired["order_result"]["status"] == "success" and isinstance(fired["order_result"]["order_id"], str)
    assert_shape(mock_data("gtt_get_orders.json"), gtts)
    assert_shape(mock_data("gtt_get_order.json"), wire(f"/gtt/triggers/{gtts[0]['id']}"))
    assert gtts[0]["condition"]["instrument_token"] == 738561


def test_positions_holdings_margins_and_profile_have_kites_fields(
    traded_sandbox: tuple[KiteSandbox, _Wire], clock: SteppedClock
) -> None:
    sandbox, wire = traded_sandbox
    positions = wire("/portfolio/positions")
    assert [(p["tradingsymbol"], p["quantity"]) for p in positions["net"]] == [("RELIANCE", 5)]
    net = positions["net"][0]
    assert (net["buy_quantity"], net["buy_value"], net["sell_quantity"], net["sell_value"]) == (10, 29000.0, 5, 14200.0)
    assert net["pnl"] == pytest.approx(14200.0 - 29000.0 + 5 * 2840.0)
    assert_shape(mock_data("positions.json"), positions)
    assert_shape(mock_data("margins.json"), wire("/user/margins"))
    assert_shape(mock_data("margins_equity.json"), wire("/user/margins/equity"))
    assert_shape(mock_data("profile.json"), wire("/user/profile"))
    clock.set(datetime(2024, 6, 5, 9, 20, tzinfo=IST))  # the day's delivery moves to holdings
    holdings = wire("/portfolio/holdings")
    assert [(h["tradingsymbol"], h["quantity"]) for h in holdings] == [("RELIANCE", 5)]
    assert_shape(mock_data("holdings.json"), holdings)
    assert sandbox.exchange.fills == []


def test_write_answers_have_kites_fields(traded_sandbox: tuple[KiteSandbox, _Wire], instrument: Instrument) -> None:
    sandbox, wire = traded_sandbox
    form = {"exchange": "NSE", "tradingsymbol": "RELIANCE", "transaction_type": "BUY", "quantity": 1,
            "product": "CNC", "order_type": "LIMIT", "price": 2000.0, "validity": "DAY"}
    placed = wire("/orders/regular", "POST", form)
    assert_shape(mock_data("order_response.json"), placed)
    assert_shape(mock_data("order_cancel.json"), wire(f"/orders/regular/{placed['order_id']}", "DELETE"))
    active = next(g for g in wire("/gtt/triggers") if g["status"] == "active")
    edit = {"type": "two-leg", "condition": json.dumps(active["condition"]),
            "orders": json.dumps([{k: v for k, v in leg.items() if k != "result"} for leg in active["orders"]])}
    assert_shape(mock_data("gtt_modify_order.json"), wire(f"/gtt/triggers/{active['id']}", "PUT", edit))
    assert_shape(mock_data("gtt_delete_order.json"), wire(f"/gtt/triggers/{active['id']}", "DELETE"))
    sandbox.set_last_price("RELIANCE", 2900.0)
    placed_gtt = wire("/gtt/triggers", "POST", _gtt_form(instrument, 2800.0, 3000.0))
    assert_shape(mock_data("gtt_place_order.json"), placed_gtt)


def test_session_answer_has_kites_fields(clock: SteppedClock) -> None:
    with KiteSandbox(clock=clock) as sandbox:
        account = sandbox.account
        request_token = account.issue_code()
        checksum = hashlib.sha256((sandbox.api_key + request_token + account.app_secret).encode()).hexdigest()
        status, answer = request_json(sandbox.url + "/session/token", "POST", urlencode(
            {"api_key": sandbox.api_key, "request_token": request_token, "checksum": checksum}).encode(),
            {"X-Kite-Version": "3", "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200
    session = mock_data("generate_session.json")
    # profile.json shows Kite sends `avatar_url` null for an account without a picture
    assert shape_errors([session, {**session, "avatar_url": None}], answer["data"]) == []


async def test_the_adapter_reads_the_sandbox_after_the_shape_changes(
    traded_sandbox: tuple[KiteSandbox, _Wire], clock: SteppedClock, instrument: Instrument
) -> None:
    sandbox, _ = traded_sandbox
    broker = ZerodhaBroker(sandbox.config(), clock, instruments=[instrument])
    try:
        fills = await broker.fills()
        assert [(f.quantity, f.price, f.ts) for f in fills] == [(10, 2900.0, clock.now()), (5, 2840.0, clock.now())]
        positions = await broker.positions()
        assert [(p.instrument_key, p.quantity, p.average_price) for p in positions] == [
            (instrument.instrument_key, 5, 2900.0)]
        intent = OrderIntent(client_order_id="SHAPEADAPTER", instrument=instrument, side=Side.BUY, quantity=1,
                             order_type=OrderType.MARKET, product=Product.CNC)
        assert (await broker.place_order(intent)).broker_order_id is not None
    finally:
        await broker.close()
