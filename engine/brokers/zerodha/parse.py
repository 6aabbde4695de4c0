"""Pure translation between Kite Connect payloads and the domain model (no I/O, no SDK)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from engine.brokers.base import BrokerError, OrderRejected, TemporaryBrokerError, TokenExpired, market_protection_of
from engine.brokers.zerodha.config import EXCHANGE
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
    Product,
    Side,
)
from engine.secrets import redact

KeyOf = Callable[[str], str]  # tradingsymbol -> instrument_key

_TEMPORARY_TYPES = {"NetworkException", "DataException"}
_REJECTED_TYPES = {"InputException", "OrderException", "PermissionException", "MarginException",
                   "HoldingException"}
_OPEN_STATUSES = {"OPEN", "TRIGGER PENDING", "OPEN PENDING", "VALIDATION PENDING", "PUT ORDER REQ RECEIVED",
                  "MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "AMO REQ RECEIVED", "UPDATE",
                  "CANCEL PENDING"}


def error_for(error_type: str, http_code: int | None, message: str) -> BrokerError:
    """Map a Kite error (its `error_type` and HTTP status) to our error classes, message redacted."""
    text = redact(f"Kite {error_type} ({http_code}): {message}")
    if error_type == "TokenException":
        return TokenExpired(text)
    if error_type in _TEMPORARY_TYPES or http_code == 429 or (http_code is not None and http_code >= 500
                                                               and error_type not in _REJECTED_TYPES):
        return TemporaryBrokerError(text)
    return OrderRejected(text)


def order_status(kite_status: str, quantity: int, filled: int) -> OrderStatus:
    status = (kite_status or "").upper()
    if status == "COMPLETE":
        return OrderStatus.FILLED
    if status == "CANCELLED":
        return OrderStatus.CANCELLED
    if status == "REJECTED":
        return OrderStatus.REJECTED
    if status in _OPEN_STATUSES or status:
        return OrderStatus.PARTIALLY_FILLED if 0 < filled < quantity else OrderStatus.OPEN
    return OrderStatus.SUBMITTED


def parse_time(value: Any) -> datetime | None:
    """Kite times are IST wall-clock strings ("2024-06-04 15:12:01"); the SDK may already have
    turned them into naive datetimes."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=IST) if moment.tzinfo is None else moment.astimezone(IST)


def place_order_params(intent: OrderIntent, product: Product, market_protection: float) -> dict[str, Any]:
    """Keyword arguments of `KiteConnect.place_order` (variety excluded). A MARKET / SL-M order carries
    the intent's `market_protection`, else `market_protection` (percent): Kite refuses them without."""
    params: dict[str, Any] = {
        "exchange": EXCHANGE,
        "tradingsymbol": intent.instrument.symbol,
        "transaction_type": intent.side.value,
        "quantity": intent.quantity,
        "product": product.value,
        "order_type": intent.order_type.value,
        "validity": "DAY",
        "tag": intent.client_order_id,
    }
    if intent.order_type in (OrderType.LIMIT, OrderType.SL):
        params["price"] = intent.price
    if intent.order_type in (OrderType.SL, OrderType.SL_M):
        params["trigger_price"] = intent.trigger_price
    protection = market_protection_of(intent, market_protection)
    if protection is not None:
        params["market_protection"] = protection
    return params


def _float(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def order_from_kite(row: Mapping[str, Any], key_of: KeyOf) -> Order:
    quantity = int(row.get("quantity") or 0)
    filled = int(row.get("filled_quantity") or 0)
    price = _float(row.get("price"))
    trigger = _float(row.get("trigger_price"))
    return Order(
        client_order_id=str(row.get("tag") or ""),
        instrument_key=key_of(str(row.get("tradingsymbol", ""))),
        side=Side(str(row.get("transaction_type", "BUY")).upper()),
        quantity=quantity,
        status=order_status(str(row.get("status", "")), quantity, filled),
        broker_order_id=str(row["order_id"]) if row.get("order_id") is not None else None,
        order_type=OrderType(str(row.get("order_type") or "MARKET")),
        price=price or None,
        trigger_price=trigger or None,
        filled_quantity=filled,
        average_price=_float(row.get("average_price")),
        message=str(row.get("status_message") or ""),
        updated_at=parse_time(row.get("exchange_update_timestamp") or row.get("order_timestamp")),
    )


def orders_from_kite(rows: Iterable[Mapping[str, Any]], key_of: KeyOf) -> list[Order]:
    return [order_from_kite(row, key_of) for row in rows]


def positions_from_kite(
    data: Mapping[str, Any], holdings: Iterable[Mapping[str, Any]], key_of: KeyOf, product: Product
) -> list[BrokerPosition]:
    """What we hold: holdings (CNC bought on earlier days: `quantity` + `t1_quantity`) plus today's
    `net` positions of our product (a sale of a holding is a negative quantity there). Flat
    instruments are left out; the average is that of the buys."""
    books: dict[str, list[float]] = {}  # instrument key -> [quantity, bought quantity, bought value]
    for row in holdings:
        quantity = int(row.get("quantity") or 0) + int(row.get("t1_quantity") or 0)
        book = books.setdefault(key_of(str(row["tradingsymbol"])), [0, 0, 0.0])
        book[0] += quantity
        book[1] += quantity
        book[2] += quantity * _float(row.get("average_price"))
    for row in data.get("net", []):
        if str(row.get("product", product.value)) != product.value:
            continue
        quantity = int(row.get("quantity") or 0)
        book = books.setdefault(key_of(str(row["tradingsymbol"])), [0, 0, 0.0])
        book[0] += quantity
        if quantity > 0:
            book[1] += quantity
            book[2] += quantity * _float(row.get("average_price"))
    return [BrokerPosition(key, int(quantity), round(value / bought, 4) if bought else 0.0)
            for key, (quantity, bought, value) in books.items() if quantity != 0]


def fills_from_kite(rows: Iterable[Mapping[str, Any]], key_of: KeyOf, *, received_at: datetime) -> list[Fill]:
    """Trade-book rows as fills; a row without any timestamp is dated `received_at` (the clock's now)."""
    fills = []
    for row in rows:
        # not the trade book's `order_timestamp`: it is a time of day ("09:16:39"), without the date
        moment = parse_time(row.get("fill_timestamp") or row.get("exchange_timestamp"))
        fills.append(Fill(
            fill_id=str(row["trade_id"]),
            client_order_id="",
            broker_order_id=str(row["order_id"]),
            instrument_key=key_of(str(row["tradingsymbol"])),
            side=Side(str(row["transaction_type"]).upper()),
            quantity=int(row["quantity"]),
            price=_float(row.get("average_price")),
            ts=moment or received_at,
        ))
    return fills


def gtt_arguments(request: ExitRequest, product: Product) -> dict[str, Any]:
    """Keyword arguments of `KiteConnect.place_gtt`/`modify_gtt` for a long's two-leg exit:
    trigger_values [stop, target] (ascending, as Kite requires) and one SELL LIMIT per leg."""
    legs = [
        {"transaction_type": "SELL", "quantity": request.quantity, "order_type": "LIMIT",
         "product": product.value, "price": limit}
        for limit in (request.stop_limit, request.target_limit)
    ]
    return {
        "trigger_type": "two-leg",
        "tradingsymbol": request.instrument.symbol,
        "exchange": EXCHANGE,
        "trigger_values": [request.stop_trigger, request.target_trigger],
        "last_price": request.last_price,
        "orders": legs,
    }


def trigger_id(data: Mapping[str, Any]) -> str:
    return str(data["trigger_id"])


def exit_from_gtt(row: Mapping[str, Any], key_of: KeyOf) -> ExitOrder:
    """A two-leg Kite GTT as an ExitOrder; which leg fired is the one with a `result`. A fired leg
    whose order Kite failed to place (`order_result.status` "failed", no order id) makes the exit
    REJECTED, with Kite's `rejection_reason` as its message."""
    condition = row.get("condition") or {}
    triggers = [*(float(v) for v in condition.get("trigger_values", [])), 0.0, 0.0]
    legs = [*(row.get("orders") or []), {}, {}]
    status_text = str(row.get("status", "")).lower()
    status = ExitStatus.ACTIVE
    triggered_order: str | None = None
    message = ""
    if status_text == "triggered":
        fired = next((i for i in (0, 1) if legs[i].get("result")), 0)
        status = ExitStatus.TRIGGERED_STOP if fired == 0 else ExitStatus.TRIGGERED_TARGET
        order_result = (legs[fired].get("result") or {}).get("order_result") or {}
        triggered_order = str(order_result["order_id"]) if order_result.get("order_id") else None
        if str(order_result.get("status", "")).lower() == "failed" and triggered_order is None:
            status = ExitStatus.REJECTED
            message = f"{('stop', 'target')[fired]} leg rejected: {order_result.get('rejection_reason') or 'no reason'}"
    elif status_text in ("cancelled", "deleted", "disabled", "expired"):
        status = ExitStatus.CANCELLED
    elif status_text == "rejected":
        status = ExitStatus.REJECTED
    return ExitOrder(
        exit_id=str(row["id"]),
        instrument_key=key_of(str(condition.get("tradingsymbol", ""))),
        quantity=int(legs[0].get("quantity") or 0),
        stop_trigger=triggers[0],
        stop_limit=_float(legs[0].get("price")),
        target_trigger=triggers[1],
        target_limit=_float(legs[1].get("price")),
        status=status,
        updated_at=parse_time(row.get("updated_at")),
        triggered_order_id=triggered_order,
        message=message,
    )


def exits_from_gtts(rows: Iterable[Mapping[str, Any]], key_of: KeyOf) -> list[ExitOrder]:
    """Our exits among Kite's GTTs: the two-leg ones (single-leg GTTs are not ours)."""
    exits = []
    for row in rows:
        if str(row.get("type", "two-leg")) != "two-leg":
            continue
        try:
            exits.append(exit_from_gtt(row, key_of))
        except (KeyError, ValueError) as error:
            raise OrderRejected(f"unreadable GTT {row.get('id')}: {error}") from error
    return exits


def funds_from_margins(data: Mapping[str, Any]) -> float | None:
    """Cash free to trade from `GET /user/margins/equity` (or `/user/margins`, whose `equity`
    segment is used): the segment's `net`, what is left after today's debits, else its
    `available.live_balance`. None when the segment is disabled or reports neither."""
    segment = data.get("equity", data) if isinstance(data, Mapping) else {}
    if not isinstance(segment, Mapping) or segment.get("enabled") is False:
        return None
    available = segment.get("available")
    live_balance = available.get("live_balance") if isinstance(available, Mapping) else None
    for value in (segment.get("net"), live_balance):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None
