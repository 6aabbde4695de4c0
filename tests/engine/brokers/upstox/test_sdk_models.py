"""Contract tests from upstox-python-sdk's models (issue 13): Upstox publishes no mock responses,
but its SDK is generated from Upstox's API spec, so its models (`upstox_client/models/*.py`:
`swagger_types`, `attribute_map`, required-field and enum checks in the setters) are the contract.

For every endpoint the adapter uses, against a sandbox holding open, filled and rejected orders,
trades, positions, holdings, exit legs and a fired MULTIPLE GTT:
- the real SDK call deserializes the sandbox's answer into the response model the SDK declares (its
  setters refuse a missing required field or a value outside an enum);
- every value of the answer has the model's JSON type, and no field lies outside the model;
- every field our parser reads (recorded while it parses the answer) exists in the model.
Our request bodies are checked against the SDK's request models the same way, and so are the
payloads of Upstox's documentation in `resources/`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import upstox_client
from upstox_client import models

from engine.brokers.upstox.client import API_VERSION, UpstoxClient
from engine.brokers.upstox.holidays import nse_calendar_data
from engine.brokers.upstox.parse import (
    LegKind,
    fill_from_trade,
    funds_from_payload,
    gtt_id_from_place,
    gtt_leg_body,
    gtt_modify_body,
    legs_from_gtts,
    order_from_payload,
    orders_from_book,
    place_order_body,
    placed_order_id,
    positions_from_payload,
)
from engine.brokers.upstox.sandbox import SANDBOX_ALGO_NAME, UpstoxSandbox
from engine.brokers.upstox.sandbox_account import LOGIN_PATH
from engine.clock import SteppedClock
from engine.execution import exit_request_for
from engine.models import IST, Instrument, OrderIntent, OrderType, Side
from tests.engine.brokers.upstox.conftest import load_resource, make_config

BOUGHT = Instrument("NSE_EQ|INE002A01018", "RELIANCE", "INE002A01018", tick_size=0.05)
HELD = Instrument("NSE_EQ|INE669E01016", "IDEA", "INE669E01016", tick_size=0.05)
NOW = datetime(2024, 6, 4, 10, 0, tzinfo=IST)
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "date": (str,), "datetime": (str,),
    "object": (object,),
}
_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(str, (.+)\)$")


# --- the model side -------------------------------------------------------------------------


def _json_keys(model: Any) -> dict[str, str]:
    """JSON key → swagger type of one SDK model."""
    return {model.attribute_map[attr]: kind for attr, kind in model.swagger_types.items()}


def field_type(kind: str, keys: tuple[str, ...]) -> str | None:
    """The swagger type found at `keys` (JSON keys; list elements are stepped through, a dict's
    key is any key) inside a value of swagger type `kind`, or None when the model has no such field."""
    for key in keys:
        while (inner := _LIST.match(kind)) is not None:
            kind = inner.group(1)
        if (values := _DICT.match(kind)) is not None:
            kind = values.group(1)
            continue
        model = getattr(models, kind, None)
        found = _json_keys(model).get(key) if model is not None else None
        if found is None:
            return None
        kind = found
    return kind


def shape_problems(value: Any, kind: str, where: str = "") -> list[str]:
    """Where the JSON `value` does not fit swagger type `kind`: a wrong JSON type, or a field the
    model lacks. None fits any type (the SDK's setters refuse None for required fields)."""
    if value is None:
        return []
    if (inner := _LIST.match(kind)) is not None:
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, the model says {kind}"]
        return [problem for item in value for problem in shape_problems(item, inner.group(1), f"{where}[]")]
    if (values := _DICT.match(kind)) is not None:
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, the model says {kind}"]
        return [problem for key, item in value.items() for problem in shape_problems(item, values.group(1),
                                                                                     f"{where}.{key}")]
    if kind in _JSON_TYPES:
        fits = isinstance(value, _JSON_TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))
        return [] if fits else [f"{where}: {value!r} is no {kind}"]
    if not isinstance(value, dict):
        return [f"{where}: {type(value).__name__}, the model {kind} is an object"]
    fields = _json_keys(getattr(models, kind))
    problems = [f"{where}.{key}: not in {kind}" for key in value if key not in fields]
    return problems + [problem for key, item in value.items() if key in fields
                       for problem in shape_problems(item, fields[key], f"{where}.{key}")]


def test_the_model_walk_finds_fields_and_types() -> None:
    """The helpers themselves: a known field, a missing one, and every kind of mismatch."""
    assert field_type("list[GttOrderDetails]", ("rules", "order_id")) == "str"
    assert field_type("dict(str, UserFundMarginData)", ("equity", "available_margin")) == "float"
    assert field_type("list[TradeData]", ("tag",)) is None
    assert shape_problems([{"quantity": "5", "nope": 1, "is_amo": 0}], "list[OrderBookData]") == [
        "[].nope: not in OrderBookData", "[].quantity: '5' is no int", "[].is_amo: 0 is no bool"]
    assert shape_problems({"rules": [{"trigger_price": True}]}, "GttOrderDetails") == [
        ".rules[].trigger_price: True is no float"]


# --- the parser side: which fields it reads ---------------------------------------------------


class _Recorded(dict[str, Any]):
    """A JSON object that notes the path of every key read from it (`get`, `[]`)."""

    def __init__(self, data: dict[str, Any], path: tuple[str, ...], reads: set[tuple[str, ...]]) -> None:
        super().__init__({key: _record(value, (*path, key), reads) for key, value in data.items()})
        self._path, self._reads = path, reads

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._reads.add((*self._path, key))
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._reads.add((*self._path, key))
        return super().__getitem__(key)


def _record(value: Any, path: tuple[str, ...], reads: set[tuple[str, ...]]) -> Any:
    if isinstance(value, dict):
        return _Recorded(value, path, reads)
    if isinstance(value, list):
        return [_record(item, path, reads) for item in value]
    return value


def fields_read(parse: Callable[[Any], Any], data: Any) -> set[tuple[str, ...]]:
    reads: set[tuple[str, ...]] = set()
    parse(_record(data, (), reads))
    return reads


# --- the sandbox, holding one of everything ---------------------------------------------------


@dataclass
class Book:
    client: UpstoxClient
    sandbox: UpstoxSandbox
    clock: SteppedClock
    filled_order_id: str
    gtt_ids: list[str]

    def resting_order(self) -> str:
        """A new open LIMIT BUY (for a cancel)."""
        intent = OrderIntent("RESTING", BOUGHT, Side.BUY, 1, order_type=OrderType.LIMIT, price=50.0)
        return placed_order_id(self.client.place_order(place_order_body(intent, "D", 2.0)))

    def exit_body(self, kind: LegKind) -> dict[str, Any]:
        request = exit_request_for(BOUGHT, 10, stop=95.0, target=110.0, last_price=100.0, tag="LEG")
        return gtt_leg_body(request, kind, "D")

    def modify_body(self) -> dict[str, Any]:
        request = exit_request_for(BOUGHT, 10, stop=96.0, target=110.0, last_price=100.0, tag="LEG")
        return gtt_modify_body(self.gtt_ids[0], request, LegKind.STOP)


@pytest.fixture
def book(sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock) -> Iterator[Book]:
    client = UpstoxClient(make_config(sandbox, order_url))
    sandbox.set_last_price(BOUGHT.instrument_key, 100.0)
    sandbox.set_last_price(HELD.instrument_key, 8.0)
    sandbox.set_holding(HELD.instrument_key, 200, 7.5)
    intents = [OrderIntent("FILLED", BOUGHT, Side.BUY, 10),
               OrderIntent("OPEN", BOUGHT, Side.BUY, 5, order_type=OrderType.LIMIT, price=90.0),
               OrderIntent("TRIGGERPENDING", BOUGHT, Side.BUY, 5, order_type=OrderType.SL_M, trigger_price=105.0),
               OrderIntent("SOLDHELD", HELD, Side.SELL, 50),
               OrderIntent("REJECTED", BOUGHT, Side.SELL, 500)]  # a delivery sell beyond what is held
    order_ids = [placed_order_id(client.place_order(place_order_body(intent, "D", 2.0)))
                 for intent in intents]
    request = exit_request_for(BOUGHT, 10, stop=95.0, target=110.0, last_price=100.0, tag="EXIT")
    gtt_ids = [gtt_id_from_place(client.place_gtt(gtt_leg_body(request, kind, "D")))
               for kind in (LegKind.STOP, LegKind.TARGET)]
    multiple = {"type": "MULTIPLE", "quantity": 100, "product": "I", "instrument_token": HELD.instrument_key,
                "transaction_type": "BUY",
                "rules": [{"strategy": "ENTRY", "trigger_type": "BELOW", "trigger_price": 7.9},
                          {"strategy": "TARGET", "trigger_type": "IMMEDIATE", "trigger_price": 8.5},
                          {"strategy": "STOPLOSS", "trigger_type": "IMMEDIATE", "trigger_price": 7.0}]}
    client.place_gtt(multiple)
    sandbox.set_last_price(HELD.instrument_key, 7.85)  # ENTRY fires and fills; TARGET/STOPLOSS arm
    clock.advance(1.0)  # a fresh second for each order API
    statuses = {row["tag"]: row["status"] for row in client.order_book()}
    assert statuses == {"FILLED": "complete", "OPEN": "open", "TRIGGERPENDING": "trigger pending",
                        "SOLDHELD": "complete", "REJECTED": "rejected", None: "complete"}
    yield Book(client, sandbox, clock, order_ids[0], gtt_ids)
    client.close()


@dataclass(frozen=True)
class Endpoint:
    name: str
    response: str  # the response model the SDK declares for the call
    sdk_call: Callable[[Book], Any]  # the real SDK, deserializing into `response`
    our_call: Callable[[Book], Any]  # UpstoxClient: the raw envelope's data, what our parser gets
    parse: Callable[[Any], Any]  # what the adapter does with that data


def _ignored(data: Any) -> None:
    """The adapter reads nothing of this answer (a cancel's success is the answer itself)."""


ALGO = {"algo_name": SANDBOX_ALGO_NAME}
ENDPOINTS = [
    Endpoint("place order v3", "PlaceOrderV3Response",
             lambda b: b.client.orders_v3.place_order(upstox_client.PlaceOrderV3Request(
                 **place_order_body(OrderIntent("SDKPLACE", BOUGHT, Side.BUY, 1), "D", 2.0)), **ALGO),
             lambda b: b.client.place_order(place_order_body(OrderIntent("OURPLACE", BOUGHT, Side.BUY, 1), "D", 2.0)),
             placed_order_id),
    Endpoint("cancel order v3", "CancelOrderV3Response",
             lambda b: b.client.orders_v3.cancel_order(b.resting_order(), **ALGO),
             lambda b: b.client.cancel_order(b.resting_order()), _ignored),
    Endpoint("order book", "GetOrderBookResponse", lambda b: b.client.orders_v2.get_order_book(API_VERSION),
             lambda b: b.client.order_book(), orders_from_book),
    Endpoint("order details", "GetOrderDetailsResponse",
             lambda b: b.client.orders_v2.get_order_status(order_id=b.filled_order_id),
             lambda b: b.client.order_details(b.filled_order_id), order_from_payload),
    Endpoint("trades for the day", "GetTradeResponse", lambda b: b.client.orders_v2.get_trade_history(API_VERSION),
             lambda b: b.client.trades(), lambda rows: [fill_from_trade(row, received_at=NOW) for row in rows]),
    Endpoint("short-term positions", "GetPositionResponse", lambda b: b.client.portfolio.get_positions(API_VERSION),
             lambda b: b.client.positions(), positions_from_payload),
    Endpoint("long-term holdings", "GetHoldingsResponse", lambda b: b.client.portfolio.get_holdings(API_VERSION),
             lambda b: b.client.holdings(), lambda rows: positions_from_payload([], rows)),
    Endpoint("GTT place", "GttTriggerOrderResponse",
             lambda b: b.client.orders_v3.place_gtt_order(upstox_client.GttPlaceOrderRequest(
                 **UpstoxClient._rules(b.exit_body(LegKind.STOP))), **ALGO),
             lambda b: b.client.place_gtt(b.exit_body(LegKind.TARGET)), gtt_id_from_place),
    Endpoint("GTT modify", "GttTriggerOrderResponse",
             lambda b: b.client.orders_v3.modify_gtt_order(upstox_client.GttModifyOrderRequest(
                 **UpstoxClient._rules(b.modify_body())), **ALGO),
             lambda b: b.client.modify_gtt(b.modify_body()), _ignored),
    Endpoint("GTT cancel", "GttTriggerOrderResponse",
             lambda b: b.client.orders_v3.cancel_gtt_order(
                 upstox_client.GttCancelOrderRequest(gtt_order_id=b.gtt_ids[0]), **ALGO),
             lambda b: b.client.cancel_gtt(b.gtt_ids[1]), _ignored),
    Endpoint("GTT details", "GetGttOrderResponse", lambda b: b.client.orders_v3.get_gtt_order_details(),
             lambda b: b.client.gtts(), legs_from_gtts),
    Endpoint("funds and margin", "GetUserFundMarginResponse",
             lambda b: upstox_client.UserApi(b.client.api_client).get_user_fund_margin(API_VERSION, segment="SEC"),
             lambda b: b.client.funds(), funds_from_payload),
    Endpoint("market holidays", "GetHolidayResponse",
             lambda b: upstox_client.MarketHolidaysAndTimingsApi(b.client.api_client).get_holidays(),
             lambda b: b.client.holidays(), nse_calendar_data),
    Endpoint("market holiday of a date", "GetHolidayResponse",
             lambda b: upstox_client.MarketHolidaysAndTimingsApi(b.client.api_client).get_holiday("2024-01-26"),
             lambda b: b.client.holiday("2024-01-26"), lambda entries: nse_calendar_data([], entries)),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[endpoint.name for endpoint in ENDPOINTS])
def test_sandbox_answers_fit_the_sdk_models_and_our_parsers_read_only_model_fields(
    book: Book, endpoint: Endpoint
) -> None:
    answer = endpoint.sdk_call(book)
    assert type(answer).__name__ == endpoint.response and answer.status == "success"
    data_type = getattr(models, endpoint.response).swagger_types["data"]
    data = endpoint.our_call(book)
    assert data, f"{endpoint.name}: the sandbox answered no data to check"
    assert shape_problems(data, data_type) == []
    read = fields_read(endpoint.parse, data)
    assert [".".join(path) for path in sorted(read) if field_type(data_type, path) is None] == []


def test_the_token_answer_fits_the_sdk_model_and_carries_the_access_token(book: Book) -> None:
    """`POST /v2/login/authorization/token` answers a bare `TokenResponse` (no envelope); login.py
    reads only `access_token` of it."""
    code = book.sandbox.account.issue_code()
    answer = upstox_client.LoginApi(book.client.api_client).token(
        API_VERSION, code=code, client_id="sandbox-client-id", client_secret=book.sandbox.account.app_secret,
        redirect_uri="http://127.0.0.1/callback", grant_type="authorization_code")
    assert isinstance(answer, models.TokenResponse) and answer.access_token == book.sandbox.access_token
    assert field_type("TokenResponse", ("access_token",)) == "str"
    assert LOGIN_PATH == "/v2/login/authorization/token"


@pytest.mark.parametrize(
    ("body", "request_model"),
    [
        (place_order_body(OrderIntent("MARKET", BOUGHT, Side.SELL, 3), "D", -1.0), "PlaceOrderV3Request"),
        (place_order_body(OrderIntent("SL", BOUGHT, Side.SELL, 3, order_type=OrderType.SL, price=94.0,
                                      trigger_price=95.0), "I", 2.0), "PlaceOrderV3Request"),
        (gtt_leg_body(exit_request_for(BOUGHT, 3, stop=95.0, target=110.0, last_price=100.0, tag="T"),
                      LegKind.STOP, "D"), "GttPlaceOrderRequest"),
        (gtt_modify_body("GTT-1", exit_request_for(BOUGHT, 3, stop=95.0, target=110.0, last_price=100.0, tag="T"),
                         LegKind.TARGET), "GttModifyOrderRequest"),
    ],
    ids=["market order", "SL order", "GTT leg", "GTT modify"],
)
def test_our_request_bodies_fit_the_sdk_request_models(body: dict[str, Any], request_model: str) -> None:
    assert shape_problems(body, request_model) == []
    model = getattr(models, request_model)
    required = [key for key in _json_keys(model) if _setter_refuses_none(model, key)]
    assert "quantity" in required or "gtt_order_id" in required
    assert [key for key in required if body.get(key) is None] == []


def _setter_refuses_none(model: Any, key: str) -> bool:
    """Whether the SDK model's field (JSON `key`) is required: its setter raises on None."""
    instance = model.__new__(model)
    attribute = {json_key: attr for attr, json_key in model.attribute_map.items()}[key]
    try:
        setattr(instance, attribute, None)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize(
    ("resource", "response"),
    [
        ("place_order_v3.json", "PlaceOrderV3Response"), ("order_book.json", "GetOrderBookResponse"),
        ("order_details.json", "GetOrderDetailsResponse"), ("trades_for_day.json", "GetTradeResponse"),
        ("short_term_positions.json", "GetPositionResponse"), ("holdings.json", "GetHoldingsResponse"),
        ("gtt_place.json", "GttTriggerOrderResponse"), ("gtt_details_exit_legs.json", "GetGttOrderResponse"),
        ("gtt_details_multiple.json", "GetGttOrderResponse"), ("funds_and_margin.json", "GetUserFundMarginResponse"),
    ],
)
def test_the_documented_payloads_of_our_parse_tests_fit_the_sdk_models(resource: str, response: str) -> None:
    """The fixtures of test_parse.py (Upstox's documentation) are of the SDK's shapes too."""
    payload = load_resource(resource)
    assert shape_problems(payload, response) == []

    class Answer:  # what ApiClient.deserialize reads of an HTTP response
        data = json.dumps(payload)

    api_client = upstox_client.ApiClient(type.__call__(upstox_client.Configuration))  # not the shared default
    assert type(api_client.deserialize(Answer, response)).__name__ == response
