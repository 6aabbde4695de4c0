"""parse.py against payloads recorded from Upstox's documentation (resources/)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from engine.brokers.base import ConfigError, OrderRejected, TemporaryBrokerError, TokenExpired
from engine.brokers.upstox.parse import (
    GttLeg,
    LegKind,
    LegState,
    error_from_response,
    exit_from_legs,
    fill_from_trade,
    gtt_id_from_place,
    gtt_leg_body,
    legs_from_gtts,
    order_from_payload,
    order_status,
    orders_from_book,
    pair_legs,
    place_order_body,
    placed_order_id,
    positions_from_payload,
    split_exit_id,
    unwrap,
)
from engine.execution import exit_request_for
from engine.models import IST, ExitStatus, Instrument, OrderIntent, OrderStatus, OrderType, Side
from tests.engine.brokers.upstox.conftest import load_resource

RELIANCE = Instrument("NSE_EQ|INE002A01018", "RELIANCE", "INE002A01018")


def test_place_answer_gives_the_order_id() -> None:
    assert placed_order_id(unwrap(load_resource("place_order_v3.json"))) == "1644490272000"
    assert gtt_id_from_place(unwrap(load_resource("gtt_place.json"))) == "GTT-C25030300128840"


def test_order_details_row_becomes_a_filled_order_in_ist() -> None:
    order = order_from_payload(unwrap(load_resource("order_details.json")))
    assert order.broker_order_id == "231019025562880"
    assert order.status is OrderStatus.FILLED
    assert (order.side, order.quantity, order.filled_quantity) == (Side.BUY, 1, 1)
    assert order.average_price == 570.95
    assert order.order_type is OrderType.LIMIT and order.price == 571.0 and order.trigger_price is None
    assert order.updated_at == datetime(2023, 10, 19, 13, 25, 13, tzinfo=IST)
    assert order.client_order_id == ""  # tag null


def test_order_book_rows_map_status_tag_and_rejection_message() -> None:
    filled, rejected, partial = orders_from_book(unwrap(load_resource("order_book.json")))
    assert filled.status is OrderStatus.FILLED
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.order_type is OrderType.SL_M and rejected.trigger_price == 570.0
    assert rejected.message.startswith("You need to add Rs. 138385.27")
    assert partial.client_order_id == "AT231019EK0123456789"
    assert partial.status is OrderStatus.PARTIALLY_FILLED and partial.filled_quantity == 4
    assert partial.price is None  # MARKET


@pytest.mark.parametrize(
    ("raw", "filled", "expected"),
    [
        ("complete", 10, OrderStatus.FILLED),
        ("rejected", 0, OrderStatus.REJECTED),
        ("cancelled", 3, OrderStatus.CANCELLED),
        ("open", 0, OrderStatus.OPEN),
        ("open", 3, OrderStatus.PARTIALLY_FILLED),
        ("trigger pending", 0, OrderStatus.OPEN),
        ("put order req received", 0, OrderStatus.OPEN),
        ("validation pending", 0, OrderStatus.OPEN),
        ("modify pending", 5, OrderStatus.PARTIALLY_FILLED),
    ],
)
def test_order_status_mapping(raw: str, filled: int, expected: OrderStatus) -> None:
    assert order_status(raw, 10, filled) is expected


def test_positions_skip_flat_rows() -> None:
    positions = positions_from_payload(unwrap(load_resource("short_term_positions.json")))
    assert [(p.instrument_key, p.quantity, p.average_price) for p in positions] == [("NSE_EQ|INE528G01035", 2, 573.0)]


def test_holdings_add_to_todays_positions() -> None:
    positions = {
        p.instrument_key: p
        for p in positions_from_payload(
            unwrap(load_resource("short_term_positions.json")), unwrap(load_resource("holdings.json"))
        )
    }
    yes_bank = positions["NSE_EQ|INE528G01035"]  # 36 held at 18.75 + 2 bought today at 573
    assert yes_bank.quantity == 38
    assert yes_bank.average_price == pytest.approx((36 * 18.75 + 2 * 573.0) / 38, abs=1e-4)
    assert positions["NSE_EQ|INE036A01016"].quantity == 1
    assert "NSE_EQ|INE669E01016" not in positions  # flat intraday round trip


def test_a_holding_sold_today_is_flat_and_a_short_keeps_its_price() -> None:
    held = [{"instrument_token": "NSE_EQ|X", "quantity": 10, "average_price": 90.0}]
    sold = [
        {"instrument_token": "NSE_EQ|X", "quantity": -10, "average_price": 0.0, "sell_price": 99.0},
        {"instrument_token": "NSE_EQ|Y", "quantity": -5, "average_price": 50.0},
    ]
    assert [(p.instrument_key, p.quantity, p.average_price) for p in positions_from_payload(sold, held)] == [
        ("NSE_EQ|Y", -5, 50.0)
    ]


def test_trade_row_becomes_a_fill() -> None:
    row = unwrap(load_resource("trades_for_day.json"))[0]
    fill = fill_from_trade(row, received_at=datetime(2024, 6, 4, tzinfo=IST))
    assert (fill.fill_id, fill.broker_order_id, fill.quantity, fill.price) == ("50613587", "231019025057849", 1, 80.15)
    assert fill.ts == datetime(2023, 10, 19, 9, 23, 23, tzinfo=IST)


@pytest.mark.parametrize(
    ("status", "resource", "error"),
    [
        (401, "error_invalid_token.json", TokenExpired),
        (403, "error_invalid_token.json", TokenExpired),
        (400, "error_invalid_token.json", TokenExpired),  # the code decides even on a 400
        (400, "error_invalid_input.json", OrderRejected),
        (404, "error_invalid_input.json", OrderRejected),
        (422, "error_invalid_input.json", OrderRejected),
        (429, "error_rate_limit.json", TemporaryBrokerError),
        (500, "error_invalid_input.json", TemporaryBrokerError),
        (503, "error_invalid_input.json", TemporaryBrokerError),
    ],
)
def test_error_mapping(status: int, resource: str, error: type[Exception]) -> None:
    mapped = error_from_response(status, load_resource(resource))
    assert type(mapped) is error
    assert f"HTTP {status}" in str(mapped)


def test_error_message_names_code_field_and_value() -> None:
    text = str(error_from_response(400, load_resource("error_invalid_input.json")))
    assert "UDAPI100036" in text and "quantity=0" in text


def test_error_without_json_body_and_status_zero() -> None:
    assert isinstance(error_from_response(502, b"<html>Bad gateway</html>"), TemporaryBrokerError)
    assert isinstance(error_from_response(0, None, "SSLError"), ConfigError)


def test_error_envelope_inside_a_200_is_raised() -> None:
    with pytest.raises(OrderRejected, match="UDAPI100036"):
        unwrap(load_resource("error_invalid_input.json"))
    with pytest.raises(TemporaryBrokerError):
        unwrap(["not", "an", "envelope"])


def test_place_order_body_carries_the_tag_and_no_slicing() -> None:
    intent = OrderIntent("AT240604EABCDEFGHJKM", RELIANCE, Side.BUY, 7, OrderType.LIMIT, price=2900.5)
    body = place_order_body(intent, "D", 2.0)
    assert body["tag"] == "AT240604EABCDEFGHJKM"
    assert (body["product"], body["order_type"], body["price"], body["slice"]) == ("D", "LIMIT", 2900.5, False)
    assert "market_protection" not in body  # Upstox ignores it on LIMIT and SL orders
    with pytest.raises(OrderRejected, match="needs a price"):
        place_order_body(OrderIntent("AT1", RELIANCE, Side.BUY, 1, OrderType.LIMIT), "D", 2.0)
    with pytest.raises(OrderRejected, match="positive"):
        place_order_body(OrderIntent("AT2", RELIANCE, Side.BUY, 0), "D", 2.0)


def test_market_and_sl_m_bodies_carry_the_intents_protection_else_the_configured_one() -> None:
    market = OrderIntent("AT3", RELIANCE, Side.SELL, 1)
    assert place_order_body(market, "D", 2.0)["market_protection"] == 2.0
    own = OrderIntent("AT4", RELIANCE, Side.SELL, 1, OrderType.SL_M, trigger_price=2800.0, market_protection=5.0)
    assert place_order_body(own, "D", -1.0)["market_protection"] == 5.0


def test_exit_legs_are_single_sell_gtts_with_market_protection_from_the_limit() -> None:
    request = exit_request_for(RELIANCE, 10, stop=95.0, target=110.0, last_price=100.0, tag="X")
    stop = gtt_leg_body(request, LegKind.STOP, "D")
    target = gtt_leg_body(request, LegKind.TARGET, "D")
    assert (stop["type"], stop["transaction_type"], stop["quantity"]) == ("SINGLE", "SELL", 10)
    assert stop["rules"] == [
        {"strategy": "ENTRY", "trigger_type": "BELOW", "trigger_price": 95.0, "market_protection": 0.52}
    ]
    assert target["rules"][0]["trigger_type"] == "ABOVE" and target["rules"][0]["trigger_price"] == 110.0


def test_recorded_gtts_pair_into_exits() -> None:
    legs = legs_from_gtts(unwrap(load_resource("gtt_details_exit_legs.json")))
    assert len(legs) == 4  # the BUY GTT is not an exit leg
    exits = [exit_from_legs(stop, target) for stop, target in pair_legs(legs)]
    fired, active = exits
    assert fired.exit_id == "GTT-C25060300000001+GTT-C25060300000002"
    assert fired.status is ExitStatus.TRIGGERED_STOP and fired.triggered_order_id == "250603000000101"
    assert active.exit_id == "GTT-C25060400000003+GTT-C25060400000004"
    assert active.status is ExitStatus.ACTIVE
    assert (active.stop_trigger, active.target_trigger, active.quantity) == (1500.0, 1650.0, 5)
    assert active.updated_at is not None and active.updated_at.tzinfo is IST


def test_multiple_gtt_from_the_docs_is_not_an_exit() -> None:
    assert legs_from_gtts(unwrap(load_resource("gtt_details_multiple.json"))) == []


def test_live_legs_pair_with_live_legs_and_half_exits_stay_visible() -> None:
    rows = unwrap(load_resource("gtt_details_exit_legs.json"))[:2]
    old_stop, old_target = legs_from_gtts(rows)
    new_stop = replace(
        old_stop, gtt_id="GTT-NEW", trigger=2850.0, state=LegState.ACTIVE, created_at=old_target.created_at + 10
    )
    pairs = pair_legs([old_stop, old_target, new_stop])
    assert (old_stop, old_target) in pairs and (new_stop, None) in pairs
    half = exit_from_legs(new_stop, None)
    assert half.exit_id == "GTT-NEW+" and half.status is ExitStatus.CANCELLED and half.target_trigger == 0.0


def test_exit_status_table() -> None:
    rows = unwrap(load_resource("gtt_details_exit_legs.json"))[2:4]
    target, stop = legs_from_gtts(rows)

    def with_state(leg: GttLeg, state: LegState) -> GttLeg:
        return replace(leg, state=state)

    assert exit_from_legs(stop, target).status is ExitStatus.ACTIVE
    assert exit_from_legs(stop, with_state(target, LegState.TRIGGERED)).status is ExitStatus.TRIGGERED_TARGET
    both = exit_from_legs(with_state(stop, LegState.TRIGGERED), with_state(target, LegState.TRIGGERED))
    assert both.status is ExitStatus.TRIGGERED_STOP
    assert exit_from_legs(stop, with_state(target, LegState.CANCELLED)).status is ExitStatus.CANCELLED
    assert exit_from_legs(with_state(stop, LegState.FAILED), target).status is ExitStatus.REJECTED


def test_exit_ids_round_trip_and_bad_ids_are_rejected() -> None:
    assert split_exit_id("GTT-A+GTT-B") == ("GTT-A", "GTT-B")
    assert split_exit_id("+GTT-B") == (None, "GTT-B")
    for bad in ("GTT-A", "+", ""):
        with pytest.raises(OrderRejected):
            split_exit_id(bad)
