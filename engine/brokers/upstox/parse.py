"""Pure translation between our domain model and Upstox's JSON (no I/O, no SDK).

Exits: Upstox GTT rules are ENTRY (mandatory), TARGET and STOPLOSS, and TARGET/STOPLOSS only arm
once the ENTRY order has filled. An OCO that protects a position we already hold therefore cannot
be one GTT. We model it as two SINGLE GTTs, each a SELL with one ENTRY rule: the stop leg triggers
BELOW the stop, the target leg ABOVE the target. Our exit id joins both GTT ids
(`"<stop gtt id>+<target gtt id>"`); the adapter enforces one-cancels-the-other (see execution.py).
"""

from __future__ import annotations

import enum
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.brokers.base import (
    BrokerError,
    ConfigError,
    OrderRejected,
    TemporaryBrokerError,
    TokenExpired,
    check_order_intent,
    market_protection_of,
)
from engine.models import (
    IST,
    BrokerPosition,
    ExitOrder,
    ExitRequest,
    ExitStatus,
    Fill,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
)
from engine.secrets import redact

EXIT_ID_SEPARATOR = "+"
TOKEN_ERROR_CODES = frozenset({"UDAPI100050", "UDAPI100016", "UDAPI100067", "UDAPI100073"})
TEMPORARY_ERROR_CODES = frozenset({"UDAPI10005", "UDAPI100500"})  # rate limit, "something went wrong"


# --- errors ---------------------------------------------------------------------------------


def _error_details(body: Any) -> tuple[str, str]:
    """(first errorCode, readable message) from an Upstox error body (bytes, str or dict)."""
    payload = body
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            payload = json.loads(body)
        except ValueError:
            return "", redact(body.strip())[:200]  # redacted before the cut: no token prefix is left
    if not isinstance(payload, dict):
        return "", ""
    errors = payload.get("errors") or []
    if not isinstance(errors, list) or not errors:
        return "", str(payload.get("message") or "")
    codes = [str(e.get("errorCode") or e.get("error_code") or "") for e in errors if isinstance(e, dict)]
    messages = []
    for e in errors:
        if not isinstance(e, dict):
            continue
        text = str(e.get("message") or "")
        where = e.get("propertyPath") or e.get("property_path")
        if where:
            text += f" ({where}={e.get('invalidValue', e.get('invalid_value'))!r})"
        messages.append(text)
    return (codes[0] if codes else ""), "; ".join(messages)


def error_from_response(status: int, body: Any, reason: str = "") -> BrokerError:
    """Map an HTTP status and Upstox error body to our error classes (like Kite's mapping):
    401/403 and token error codes → TokenExpired; 429, 5xx → TemporaryBrokerError; other 4xx →
    OrderRejected; status 0 (the SDK could not even build or secure the request) → ConfigError.
    The message is redacted: a gateway may echo the Authorization header into the body."""
    code, message = _error_details(body)
    text = redact(f"Upstox HTTP {status}{' ' + code if code else ''}: {message or reason or 'no message'}")
    if status in (401, 403) or code in TOKEN_ERROR_CODES:
        return TokenExpired(text)
    if status == 429 or status >= 500 or code in TEMPORARY_ERROR_CODES:
        return TemporaryBrokerError(text)
    if status == 0:
        return ConfigError(text)
    return OrderRejected(text)


def unwrap(payload: Any) -> Any:
    """The `data` of a `{"status": "success", "data": ...}` envelope; anything else is an error."""
    if isinstance(payload, dict) and payload.get("status") == "success":
        return payload.get("data")
    if isinstance(payload, dict) and payload.get("status") == "error":
        raise error_from_response(400, payload)
    raise TemporaryBrokerError(f"Upstox answered without a success envelope: {redact(str(payload))[:200]}")


# --- orders ---------------------------------------------------------------------------------

_ORDER_STATUS = {
    "complete": OrderStatus.FILLED,
    "rejected": OrderStatus.REJECTED,
    "cancelled": OrderStatus.CANCELLED,
    "cancelled after market order": OrderStatus.CANCELLED,
}


def order_status(raw_status: str, quantity: int, filled: int) -> OrderStatus:
    """Upstox order statuses (lower case: "open", "complete", "trigger pending", "put order req
    received", "validation pending", "modify pending", ...) to our state machine. Every status
    that is not terminal means the broker holds the order: OPEN, or PARTIALLY_FILLED once some of
    it traded."""
    status = _ORDER_STATUS.get(raw_status.strip().lower())
    if status is not None:
        return status
    return OrderStatus.PARTIALLY_FILLED if 0 < filled < quantity else OrderStatus.OPEN


def parse_time(text: Any) -> datetime | None:
    """Upstox order times are "YYYY-MM-DD HH:MM:SS" in IST."""
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST)
    except ValueError:
        return None


def _number(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0


def place_order_body(intent: OrderIntent, product_code: str, market_protection: float) -> dict[str, Any]:
    """Keyword arguments of the SDK's `PlaceOrderV3Request` for `intent` (tag = client_order_id).
    `slice` is off: one intent must be exactly one broker order, findable by its tag.
    MARKET and SL-M orders carry the intent's `market_protection`, else `market_protection` (percent,
    or -1 for Upstox's automatic one); LIMIT and SL orders none (Upstox ignores it on them)."""
    check_order_intent(intent)
    percent = market_protection_of(intent, market_protection)
    protection = {"market_protection": float(percent)} if percent is not None else {}
    return {
        "quantity": intent.quantity,
        "product": product_code,
        "validity": "DAY",
        "price": float(intent.price or 0.0),
        "tag": intent.client_order_id,
        "instrument_token": intent.instrument.instrument_key,
        "order_type": intent.order_type.value,
        "transaction_type": intent.side.value,
        "disclosed_quantity": 0,
        "trigger_price": float(intent.trigger_price or 0.0),
        "is_amo": False,
        "slice": False,
        **protection,
    }


def placed_order_id(data: Any) -> str:
    """The order id of a v3 place answer (`{"order_ids": [...]}`)."""
    ids = data.get("order_ids") if isinstance(data, dict) else None
    if not ids or not isinstance(ids, list):
        raise TemporaryBrokerError(f"Upstox place order answer has no order id: {data!r}")
    return str(ids[0])


def order_from_payload(row: dict[str, Any]) -> Order:
    """An order book / order details row as our `Order` (client_order_id = the row's tag)."""
    quantity = int(row.get("quantity") or 0)
    filled = int(row.get("filled_quantity") or 0)
    order_type = OrderType(row.get("order_type") or "MARKET")
    price = _number(row.get("price"))
    trigger = _number(row.get("trigger_price"))
    message = row.get("status_message") or row.get("status_message_raw") or ""
    return Order(
        client_order_id=str(row.get("tag") or ""),
        instrument_key=str(row.get("instrument_token") or ""),
        side=Side(str(row.get("transaction_type") or "BUY").upper()),
        quantity=quantity,
        status=order_status(str(row.get("status") or ""), quantity, filled),
        broker_order_id=str(row["order_id"]) if row.get("order_id") else None,
        order_type=order_type,
        price=price if price > 0 and order_type in (OrderType.LIMIT, OrderType.SL) else None,
        trigger_price=trigger if trigger > 0 else None,
        filled_quantity=filled,
        average_price=_number(row.get("average_price")),
        message=str(message),
        updated_at=parse_time(row.get("exchange_timestamp")) or parse_time(row.get("order_timestamp")),
    )


def orders_from_book(rows: Any) -> list[Order]:
    return [order_from_payload(row) for row in rows or [] if isinstance(row, dict)]


def positions_from_payload(position_rows: Any, holding_rows: Any = ()) -> list[BrokerPosition]:
    """Net quantity per instrument: today's short-term positions plus delivery holdings. Upstox's
    holdings `quantity` is the total held (T+1 shares included) and is not reduced by today's
    sells, which show as negative short-term positions instead, so the two add up. Flat
    instruments are left out; the average is the quantity-weighted one of the parts on the net's side."""
    by_key: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in [*(position_rows or []), *(holding_rows or [])]:
        quantity = int(row.get("quantity") or 0)
        if quantity:
            price = _number(row.get("average_price")) or _number(row.get("buy_price"))
            by_key[str(row.get("instrument_token") or "")].append((quantity, price))
    result = []
    for key, parts in by_key.items():
        net = sum(quantity for quantity, _ in parts)
        if net == 0:
            continue
        same_side = [(abs(quantity), price) for quantity, price in parts if (quantity > 0) == (net > 0)]
        weight = sum(quantity for quantity, _ in same_side)
        result.append(BrokerPosition(key, net, round(sum(q * p for q, p in same_side) / weight, 4)))
    return result


def fill_from_trade(row: dict[str, Any], *, received_at: datetime, tags: Mapping[str, str] | None = None) -> Fill:
    """A row of the trade book (`/v2/order/trades/get-trades-for-day`); a row without a readable
    timestamp is dated `received_at` (the clock's now), not refused on every poll. Trade rows carry
    no tag (the SDK's `TradeData` has none): `tags` maps order ids to our client_order_ids."""
    ts = parse_time(row.get("exchange_timestamp")) or parse_time(row.get("order_timestamp")) or received_at
    order_id = str(row.get("order_id") or "")
    return Fill(
        fill_id=str(row.get("trade_id") or ""),
        client_order_id=(tags or {}).get(order_id, ""),
        broker_order_id=order_id,
        instrument_key=str(row.get("instrument_token") or ""),
        side=Side(str(row.get("transaction_type") or "BUY").upper()),
        quantity=int(row.get("quantity") or 0),
        price=_number(row.get("average_price")),
        ts=ts,
    )


# --- exits (two SINGLE GTTs) ------------------------------------------------------------------


class LegKind(enum.StrEnum):
    STOP = "BELOW"  # the ENTRY rule's trigger_type of each leg
    TARGET = "ABOVE"


class LegState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    TRIGGERED = "TRIGGERED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


# GTT rule statuses: SCHEDULED, PENDING, INACTIVE wait; TRIGGERED, OPEN, COMPLETED fired;
# CANCELLED, EXPIRED ended unfired; FAILED fired but its order was refused.
_LEG_STATE = {
    "SCHEDULED": LegState.ACTIVE,
    "PENDING": LegState.ACTIVE,
    "INACTIVE": LegState.ACTIVE,
    "TRIGGERED": LegState.TRIGGERED,
    "OPEN": LegState.TRIGGERED,
    "COMPLETED": LegState.TRIGGERED,
    "CANCELLED": LegState.CANCELLED,
    "EXPIRED": LegState.CANCELLED,
    "FAILED": LegState.FAILED,
}


@dataclass(frozen=True, slots=True)
class GttLeg:
    gtt_id: str
    instrument_key: str
    quantity: int
    product: str
    kind: LegKind
    trigger: float
    state: LegState
    order_id: str | None = None
    created_at: int = 0  # epoch microseconds, as Upstox reports it
    message: str = ""
    limit: float | None = None  # LIMIT price of the order it places; GTT details do not report it


def join_exit_id(stop_id: str | None, target_id: str | None) -> str:
    return f"{stop_id or ''}{EXIT_ID_SEPARATOR}{target_id or ''}"


def split_exit_id(exit_id: str) -> tuple[str | None, str | None]:
    """(stop GTT id, target GTT id) of one of our exit ids; a half-built exit lacks one side."""
    stop_id, separator, target_id = exit_id.partition(EXIT_ID_SEPARATOR)
    if not separator or not (stop_id or target_id):
        raise OrderRejected(f"{exit_id!r} is not an Upstox exit id ('<stop gtt id>+<target gtt id>')")
    return stop_id or None, target_id or None


def leg_prices(request: ExitRequest, kind: LegKind) -> tuple[float, float]:
    """(trigger, limit) of one leg of `request`."""
    if kind is LegKind.STOP:
        return request.stop_trigger, request.stop_limit
    return request.target_trigger, request.target_limit


def _rule(request: ExitRequest, kind: LegKind) -> dict[str, Any]:
    """The leg's ENTRY rule. Upstox fires a GTT as a LIMIT order priced by market protection (a
    percentage away from the trigger), so our SELL limit below the trigger becomes that percentage."""
    trigger, limit = leg_prices(request, kind)
    rule: dict[str, Any] = {"strategy": "ENTRY", "trigger_type": kind.value, "trigger_price": float(trigger)}
    if 0 < limit < trigger:  # floored to 0.01 %, so Upstox's limit never falls below ours
        rule["market_protection"] = math.floor((trigger - limit) / trigger * 10_000) / 100
    return rule


def gtt_leg_body(request: ExitRequest, kind: LegKind, product_code: str) -> dict[str, Any]:
    """Keyword arguments of the SDK's `GttPlaceOrderRequest` for one leg (rules as plain dicts;
    the client turns them into `GttRule`s)."""
    return {
        "type": "SINGLE",
        "quantity": request.quantity,
        "product": product_code,
        "instrument_token": request.instrument.instrument_key,
        "transaction_type": Side.SELL.value,
        "rules": [_rule(request, kind)],
    }


def gtt_modify_body(gtt_id: str, request: ExitRequest, kind: LegKind) -> dict[str, Any]:
    """Keyword arguments of the SDK's `GttModifyOrderRequest` for one leg."""
    return {"type": "SINGLE", "quantity": request.quantity, "gtt_order_id": gtt_id, "rules": [_rule(request, kind)]}


def gtt_id_from_place(data: Any) -> str:
    ids = data.get("gtt_order_ids") if isinstance(data, dict) else None
    if not ids or not isinstance(ids, list):
        raise TemporaryBrokerError(f"Upstox GTT place answer has no gtt_order_ids: {data!r}")
    return str(ids[0])


def leg_from_gtt(row: dict[str, Any]) -> GttLeg | None:
    """One of our exit legs (a SINGLE SELL GTT with one ENTRY rule ABOVE/BELOW), else None."""
    rules = row.get("rules") or []
    if str(row.get("type") or "").upper() != "SINGLE" or len(rules) != 1:
        return None
    rule = rules[0]
    if str(rule.get("strategy") or "").upper() != "ENTRY":
        return None
    if str(rule.get("transaction_type") or row.get("transaction_type") or "").upper() != Side.SELL.value:
        return None
    trigger_type = str(rule.get("trigger_type") or "").upper()
    if trigger_type not in (LegKind.STOP.value, LegKind.TARGET.value):
        return None
    return GttLeg(
        gtt_id=str(row.get("gtt_order_id") or ""),
        instrument_key=str(row.get("instrument_token") or ""),
        quantity=int(row.get("quantity") or 0),
        product=str(row.get("product") or ""),
        kind=LegKind(trigger_type),
        trigger=_number(rule.get("trigger_price")),
        state=_LEG_STATE.get(str(rule.get("status") or "SCHEDULED").upper(), LegState.ACTIVE),
        order_id=str(rule["order_id"]) if rule.get("order_id") else None,
        created_at=int(row.get("created_at") or 0),
        message=str(rule.get("message") or ""),
    )


def legs_from_gtts(rows: Any) -> list[GttLeg]:
    legs = (leg_from_gtt(row) for row in rows or [] if isinstance(row, dict))
    return [leg for leg in legs if leg is not None]


def pair_legs(legs: list[GttLeg]) -> list[tuple[GttLeg | None, GttLeg | None]]:
    """Re-pair stop and target legs (the broker keeps no link between them): same instrument,
    quantity and product; live legs pair with live legs first, then closest creation times.
    Deterministic, so a restarted process rebuilds the same exit ids."""
    groups: dict[tuple[str, int, str], list[GttLeg]] = defaultdict(list)
    for leg in legs:
        groups[(leg.instrument_key, leg.quantity, leg.product)].append(leg)
    candidates = sorted(
        (
            (
                (stop.state is LegState.ACTIVE) != (target.state is LegState.ACTIVE),
                abs(stop.created_at - target.created_at),
                stop.gtt_id,
                target.gtt_id,
            ),
            stop,
            target,
        )
        for group in groups.values()
        for stop in group
        if stop.kind is LegKind.STOP
        for target in group
        if target.kind is LegKind.TARGET
    )
    paired: set[str] = set()
    pairs: list[tuple[GttLeg | None, GttLeg | None]] = []
    for _, stop, target in candidates:
        if stop.gtt_id in paired or target.gtt_id in paired:
            continue
        paired.update((stop.gtt_id, target.gtt_id))
        pairs.append((stop, target))
    pairs.extend((leg, None) for leg in legs if leg.kind is LegKind.STOP and leg.gtt_id not in paired)
    pairs.extend((None, leg) for leg in legs if leg.kind is LegKind.TARGET and leg.gtt_id not in paired)
    return sorted(pairs, key=lambda pair: min(leg.created_at for leg in pair if leg is not None))


def exit_status(stop: GttLeg | None, target: GttLeg | None) -> ExitStatus:
    """The OCO's status from its legs. A leg that fired decides (stop first when both fired in a
    gap); a pair with any live leg and no fired leg is ACTIVE only if both legs are live."""
    legs = [leg for leg in (stop, target) if leg is not None]
    if stop is not None and stop.state is LegState.TRIGGERED:
        return ExitStatus.TRIGGERED_STOP
    if target is not None and target.state is LegState.TRIGGERED:
        return ExitStatus.TRIGGERED_TARGET
    if stop is not None and target is not None and all(leg.state is LegState.ACTIVE for leg in legs):
        return ExitStatus.ACTIVE
    if any(leg.state is LegState.FAILED for leg in legs):
        return ExitStatus.REJECTED
    return ExitStatus.CANCELLED


def _limit(leg: GttLeg | None) -> float:
    if leg is None:
        return 0.0
    return leg.limit if leg.limit is not None else leg.trigger


def exit_from_legs(
    stop: GttLeg | None, target: GttLeg | None, tag: str = "", updated_at: datetime | None = None
) -> ExitOrder:
    """Our exit from its legs; a leg's limit defaults to its trigger when unknown."""
    any_leg = stop or target
    assert any_leg is not None
    status = exit_status(stop, target)
    fired = stop if status is ExitStatus.TRIGGERED_STOP else target if status is ExitStatus.TRIGGERED_TARGET else None
    stop_trigger = stop.trigger if stop else 0.0
    target_trigger = target.trigger if target else 0.0
    created = max(leg.created_at for leg in (stop, target) if leg is not None)
    return ExitOrder(
        exit_id=join_exit_id(stop.gtt_id if stop else None, target.gtt_id if target else None),
        instrument_key=any_leg.instrument_key,
        quantity=any_leg.quantity,
        stop_trigger=stop_trigger,
        stop_limit=_limit(stop),
        target_trigger=target_trigger,
        target_limit=_limit(target),
        status=status,
        tag=tag,
        updated_at=updated_at or (datetime.fromtimestamp(created / 1_000_000, IST) if created else None),
        triggered_order_id=fired.order_id if fired else None,
    )


def funds_from_payload(data: Any) -> float | None:
    """Cash free to trade from `GET /v2/user/get-funds-and-margin?segment=SEC` (the SDK's
    `GetUserFundMarginResponse.data`, a dict of `UserFundMarginData` by segment): the equity
    segment's `available_margin`. None when the payload has no such number."""
    equity = data.get("equity") if isinstance(data, dict) else None
    value = equity.get("available_margin") if isinstance(equity, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
