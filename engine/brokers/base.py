"""The broker contract. The engine talks only to this interface.

| method            | required | what it does                                                    |
|-------------------|----------|-----------------------------------------------------------------|
| place_order       | yes      | send an entry/exit order; idempotent on `client_order_id` (tag) |
| cancel_order      | yes      | cancel a working order                                          |
| list_orders       | yes      | today's orders at the broker                                    |
| positions         | yes      | net positions at the broker                                     |
| place_exit_oco    | yes      | two-leg GTT: stop + target (OCO)                                |
| modify_exit       | yes      | move the stop/target of a live exit                             |
| cancel_exit       | yes      | delete a live exit                                              |
| list_exits        | yes      | all exits (GTTs) with their status                              |
| connect / close   | optional | open/close sessions; default no-op                              |
| on_tick           | optional | price updates (the paper broker fills against them)             |
| tick_feed         | optional | per tick batch: a synchronous on_tick for its ticks, or None    |
| exit_changes      | optional | a simulated venue's count of changes to its exits, or None      |
| funds             | optional | available cash; None when the broker cannot tell                |
| fills             | optional | today's executions (trade book); None when the broker cannot    |
| find_exit         | optional | the ACTIVE exit an earlier attempt of a request created         |
| get_exits         | optional | the exits of some ids (default: filters list_exits)             |
| get_order         | optional | one order by the broker's id (default: scans list_orders)       |
| find_order        | optional | one order by our client_order_id, its tag (default: scans)      |

Errors: raise `TemporaryBrokerError` for what may succeed on retry (network, 429, 5xx, timeouts),
`OrderRejected` for what never will, `TokenExpired` for authentication failures (stop trading,
alert), `ConfigError` for a bad configuration. Only `TemporaryBrokerError` is ever retried.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

from engine.data.ticks import PriceRole, round_for
from engine.listen import is_loopback_host
from engine.models import (
    BrokerPosition,
    ExitOrder,
    ExitRequest,
    ExitStatus,
    Fill,
    Instrument,
    Order,
    OrderIntent,
    OrderStatus,
    OrderType,
    Tick,
)

log = logging.getLogger(__name__)


class BrokerError(Exception):
    """Base class for broker failures."""


class TemporaryBrokerError(BrokerError):
    """May succeed on retry: network errors, HTTP 429/5xx, timeouts."""


class OrderRejected(BrokerError):
    """The broker refused the request; retrying will not help."""


class TokenExpired(BrokerError):
    """Authentication failed (HTTP 401/403, TokenException): stop entries and alert."""


class ConfigError(BrokerError):
    """The broker is misconfigured (missing credentials, bad URL)."""


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    gtt: bool = True  # two-leg OCO exits held at the broker
    bracket_orders: bool = False
    orders_per_second: float = 10.0
    orders_per_minute: int = 400
    max_tag_length: int = 20


def is_loopback_url(url: str) -> bool:
    return is_loopback_host(urlparse(url).hostname or "")


def shown_url(url: str) -> str:
    """`url` fit for a log line: scheme, host, port and path, never a user:password part."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{host}{port}{parsed.path}".rstrip("/")


def check_http_url(name: str, url: str, example: str, *, sandbox: str) -> str:
    """`url` without its trailing slash. ConfigError unless it is an https:// URL, or http:// to a
    loopback host (the token must not cross a network in clear text). The old magic value "sandbox"
    is refused: the built-in sandbox is the broker `sandbox` (AUTOTRADER_BROKER) now."""
    if url.strip().lower() == "sandbox":
        raise ConfigError(
            f"{name}=sandbox is no longer supported: set AUTOTRADER_BROKER={sandbox} to trade against the "
            f"built-in loopback sandbox, and leave {name} unset"
        )
    try:
        parsed = urlparse(url)
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        host = None
    if parsed.scheme not in ("http", "https") or not host:
        shown = url.split("@", 1)[1] if "@" in url else url  # never a user:password part
        raise ConfigError(f"{name} must be an https:// URL such as {example}, got {shown!r}")
    if parsed.scheme == "http" and not is_loopback_host(host or ""):
        raise ConfigError(
            f"{name} must use https:// (plain http:// is allowed only to a loopback host such as 127.0.0.1): "
            f"{shown_url(url)} would send the access token unencrypted to {host}"
        )
    return url.rstrip("/")


def check_order_intent(intent: OrderIntent) -> None:
    """Refuse an intent no venue would accept (before anything is sent)."""
    if intent.quantity <= 0:
        raise OrderRejected(f"order {intent.client_order_id}: quantity must be positive, got {intent.quantity}")
    if intent.order_type in (OrderType.LIMIT, OrderType.SL) and not intent.price:
        raise OrderRejected(f"order {intent.client_order_id}: a {intent.order_type} order needs a price")
    if intent.order_type in (OrderType.SL, OrderType.SL_M) and not intent.trigger_price:
        raise OrderRejected(f"order {intent.client_order_id}: a {intent.order_type} order needs a trigger price")


def market_protection_of(intent: OrderIntent, default: float) -> float | None:
    """The `market_protection` percent an order is sent with: the intent's own, else `default` (the
    adapter's configured percent), for a MARKET or SL-M order (Kite refuses them without one since
    April 2026); None for LIMIT and SL orders, which their price bounds."""
    if intent.order_type not in (OrderType.MARKET, OrderType.SL_M):
        return None
    return intent.market_protection if intent.market_protection is not None else default


def check_exit_request(request: ExitRequest) -> None:
    """Refuse a long's exit whose triggers do not straddle the last price (as Kite does)."""
    if request.quantity <= 0:
        raise OrderRejected(f"exit {request.tag}: quantity must be positive, got {request.quantity}")
    if not request.stop_trigger < request.last_price < request.target_trigger:
        raise OrderRejected(
            f"exit {request.tag}: needs stop trigger < last price < target trigger, got "
            f"{request.stop_trigger} / {request.last_price} / {request.target_trigger}"
        )


def limit_below(instrument: Instrument, trigger: float, offset_pct: float,
                role: PriceRole = PriceRole.STOP_LIMIT) -> float:
    """A SELL leg's LIMIT `offset_pct` percent below its trigger, rounded down to the tick grid
    (`engine.data.ticks.round_for`), so it stays marketable once the trigger is crossed (GTTs place
    LIMIT orders only)."""
    return round_for(instrument, trigger * (1 - offset_pct / 100), role)


def acknowledged_order(intent: OrderIntent, broker_order_id: str, at: datetime) -> Order:
    """`intent` as the broker just accepted it (OPEN under `broker_order_id`)."""
    return Order(client_order_id=intent.client_order_id, instrument_key=intent.instrument.instrument_key,
                 side=intent.side, quantity=intent.quantity, status=OrderStatus.OPEN, broker_order_id=broker_order_id,
                 order_type=intent.order_type, price=intent.price, trigger_price=intent.trigger_price, updated_at=at)


class Broker(ABC):
    name: str = "base"
    capabilities: BrokerCapabilities = BrokerCapabilities()

    async def connect(self) -> None:  # noqa: B027 - optional hook
        """Open sessions / check the token. Optional."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Optional."""

    async def on_tick(self, tick: Tick) -> None:  # noqa: B027 - optional hook
        """Price update. Optional; the paper broker fills and triggers exits from it."""

    def tick_feed(self) -> Callable[[Tick], None] | None:
        """Once per batch of ticks: a plain (not async) `on_tick` for that batch's ticks, or None
        (the default) to have `on_tick` awaited per tick. A simulated venue offers one: its day is
        checked once per batch and no coroutine is made per tick."""
        return None

    def exit_changes(self) -> int | None:
        """A count of the changes to this venue's exits and to the orders their fired legs placed, from a
        venue that sees them all happen (a simulated one): the GTT sync then runs only once it moved.
        None (the default): unknown, the sync runs on its timer."""
        return None

    async def funds(self) -> float | None:
        """Available cash, or None when unknown. Optional."""
        return None

    async def fills(self) -> list[Fill] | None:
        """Today's executions; None when the broker cannot list them (the order manager then derives
        fills from each order's filled quantity and average price). Optional."""
        return None

    async def find_order(self, client_order_id: str) -> Order | None:
        """The order tagged `client_order_id` (the latest, if the broker holds several), or None.
        Optional; the default scans `list_orders`."""
        matches = [o for o in await self.list_orders() if o.client_order_id == client_order_id]
        if len(matches) > 1:
            log.error("%s has %d orders tagged %s; reporting the latest", self.name, len(matches), client_order_id)
        return matches[-1] if matches else None

    async def get_order(self, broker_order_id: str) -> Order | None:
        """One order by the broker's id, including orders we did not tag (a fired GTT's leg).
        Optional; the default scans `list_orders`."""
        return next((o for o in await self.list_orders() if o.broker_order_id == broker_order_id), None)

    async def get_exits(self, exit_ids: Collection[str]) -> list[ExitOrder]:
        """The exits of `exit_ids` the broker lists (a GTT sync asks for the active ones). Optional; the
        default filters `list_exits` (one call, however many ids)."""
        wanted = set(exit_ids)
        return [exit_order for exit_order in await self.list_exits() if exit_order.exit_id in wanted]

    async def find_exit(self, request: ExitRequest) -> ExitOrder | None:
        """The ACTIVE exit an earlier attempt of `request` created: by tag, or, for brokers whose GTTs
        carry no tag (Kite), by instrument, quantity and both triggers. Optional; override when cheaper."""
        for exit_order in await self.list_exits():
            if exit_order.status is not ExitStatus.ACTIVE:
                continue
            if exit_order.tag:
                if exit_order.tag == request.tag:
                    return exit_order
                continue
            if (
                exit_order.instrument_key == request.instrument.instrument_key
                and exit_order.quantity == request.quantity
                and abs(exit_order.stop_trigger - request.stop_trigger) < 1e-6
                and abs(exit_order.target_trigger - request.target_trigger) < 1e-6
            ):
                return exit_order
        return None

    @abstractmethod
    async def place_order(self, intent: OrderIntent) -> Order: ...

    @abstractmethod
    async def cancel_order(self, broker_order_id: str) -> None: ...

    @abstractmethod
    async def list_orders(self) -> list[Order]: ...

    @abstractmethod
    async def positions(self) -> list[BrokerPosition]: ...

    @abstractmethod
    async def place_exit_oco(self, request: ExitRequest) -> ExitOrder: ...

    @abstractmethod
    async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder: ...

    @abstractmethod
    async def cancel_exit(self, exit_id: str) -> None: ...

    @abstractmethod
    async def list_exits(self) -> list[ExitOrder]: ...
