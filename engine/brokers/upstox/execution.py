"""`UpstoxBroker`: the Broker contract on Upstox (v3 orders on the HFT host, GTT exits).

Exactly once: every order carries our client_order_id as its `tag`, and `find_order` finds it in
the order book, so the order manager can look an order up before it retries. Within a process the
adapter also refuses to resend a tag it has already sent: a second `place_order` for the same tag
returns what the order book holds (or sends only if the book has no such order).

Exits are two SINGLE GTTs (see parse.py for why). The OCO is enforced here: whenever
`list_exits` sees one leg fired, cancelled or failed while the other still waits, it cancels the
waiting one, so an exit is never half alive. Between two such calls both legs can fire (a gap
through both triggers); for CNC the second SELL is refused for lack of holdings, for MIS it
would open a short, which is why the order manager polls `list_exits` (sync_exits) often.

Upstox's order rules of 2026: every order request (place, cancel, GTT place/modify/cancel) carries
the app's Algo Name in the `X-Algo-Name` header (`upstox.algo_name`), and each of those APIs takes
at most `upstox.orders_per_second` (and `orders_per_minute`) requests, paced here on the clock;
MARKET and SL-M orders carry the intent's `market_protection`, else `execution.market_protection`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from engine.brokers.base import (
    Broker,
    ConfigError,
    OrderRejected,
    TemporaryBrokerError,
    acknowledged_order,
    check_exit_request,
    limit_below,
)
from engine.brokers.upstox.client import UpstoxClient
from engine.brokers.upstox.config import PRODUCT_CODES, UPSTOX_CAPABILITIES, UpstoxConfig
from engine.brokers.upstox.parse import (
    GttLeg,
    LegKind,
    LegState,
    exit_from_legs,
    fill_from_trade,
    funds_from_payload,
    gtt_id_from_place,
    gtt_leg_body,
    gtt_modify_body,
    leg_from_gtt,
    leg_prices,
    legs_from_gtts,
    order_from_payload,
    orders_from_book,
    pair_legs,
    place_order_body,
    placed_order_id,
    positions_from_payload,
    split_exit_id,
)
from engine.clock import Clock
from engine.execution.ratelimit import RateLimiter
from engine.models import (
    BrokerPosition,
    ExitOrder,
    ExitRequest,
    ExitStatus,
    Fill,
    Instrument,
    Order,
    OrderIntent,
    Product,
)

if TYPE_CHECKING:
    from engine.settings import Credentials, Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
PRICE_EPSILON = 1e-6


def _leg_matches(leg: GttLeg, request: ExitRequest, kind: LegKind) -> bool:
    trigger = request.stop_trigger if kind is LegKind.STOP else request.target_trigger
    return (
        leg.kind is kind
        and leg.state is LegState.ACTIVE
        and leg.instrument_key == request.instrument.instrument_key
        and leg.quantity == request.quantity
        and abs(leg.trigger - trigger) < PRICE_EPSILON
    )


def _waiting(leg: GttLeg | None) -> bool:
    return leg is not None and leg.state is LegState.ACTIVE


class UpstoxBroker(Broker):
    name = "upstox"
    capabilities = UPSTOX_CAPABILITIES  # the default; an instance's carry its configured order rates

    def __init__(self, config: UpstoxConfig, clock: Clock, *, instruments: Iterable[Instrument] = ()) -> None:
        """`instruments` supply tick sizes (for the GTT limits `list_exits` reports); unknown
        instruments get NSE's 0.05."""
        self.config = config
        self.clock = clock
        self.client = UpstoxClient(config)
        self.capabilities = config.capabilities
        self._instruments = {i.instrument_key: i for i in instruments}
        self._sent_tags: set[str] = set()
        # Upstox counts each order API on its own, GTT calls included (the order manager paces only placing)
        self._order_rates = {
            call: RateLimiter.for_capabilities(clock, self.capabilities)
            for call in (self.client.place_order, self.client.cancel_order, self.client.place_gtt,
                         self.client.modify_gtt, self.client.cancel_gtt)
        }

    @classmethod
    def from_settings(
        cls, settings: Settings, credentials: Credentials, *, clock: Clock, instruments: Iterable[Instrument] = ()
    ) -> UpstoxBroker:
        """From UPSTOX_ACCESS_TOKEN / UPSTOX_API_URL / UPSTOX_ORDER_URL, `execution.product`,
        `execution.gtt_limit_offset_pct`, `execution.market_protection` and the `[upstox]` settings
        (`AUTOTRADER_BROKER=upstox-sandbox` is chosen in the factory). Upstox refuses orders without
        the app's Algo Name, so an empty `upstox.algo_name` is a ConfigError before anything is sent."""
        upstox = settings.upstox
        config = UpstoxConfig.from_credentials(
            credentials, product=Product(settings.execution.product),
            limit_offset_pct=settings.execution.gtt_limit_offset_pct,
            market_protection=settings.execution.market_protection,
            algo_name=upstox.algo_name.strip() or None, orders_per_second=upstox.orders_per_second,
            orders_per_minute=upstox.orders_per_minute)
        if config.algo_name is None:
            raise ConfigError(
                "setting 'upstox.algo_name' is empty: Upstox refuses orders without the X-Algo-Name header; "
                "set it (or AUTOTRADER_UPSTOX__ALGO_NAME) to the Algo Name of your app in Upstox My Apps"
            )
        return cls(config, clock, instruments=instruments)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        limiter = self._order_rates.get(call)
        if limiter is not None:
            await limiter.acquire()
        return await asyncio.to_thread(call, *args)

    async def connect(self) -> None:
        """Check the token with a cheap authenticated read (raises TokenExpired when refused)."""
        await self._run(self.client.positions)

    async def close(self) -> None:
        await self._run(self.client.close)

    # --- orders ---------------------------------------------------------------------------

    async def place_order(self, intent: OrderIntent) -> Order:
        if intent.client_order_id in self._sent_tags:
            existing = await self.find_order(intent.client_order_id)
            if existing is not None:
                return existing
        body = place_order_body(intent, PRODUCT_CODES[intent.product], self.config.market_protection)
        self._sent_tags.add(intent.client_order_id)
        order_id = placed_order_id(await self._run(self.client.place_order, body))
        return acknowledged_order(intent, order_id, self.clock.now())

    async def get_order(self, broker_order_id: str) -> Order:
        """One order's latest state (GET /v2/order/details; cheaper than the whole book)."""
        return order_from_payload(await self._run(self.client.order_details, broker_order_id))

    async def cancel_order(self, broker_order_id: str) -> None:
        await self._run(self.client.cancel_order, broker_order_id)

    async def list_orders(self) -> list[Order]:
        return orders_from_book(await self._run(self.client.order_book))

    async def positions(self) -> list[BrokerPosition]:
        """Net positions: today's short-term positions plus delivery holdings of earlier days (a
        CNC swing position lives in the holdings from the next day on)."""
        rows, holdings = await asyncio.gather(self._run(self.client.positions), self._run(self.client.holdings))
        return positions_from_payload(rows, holdings)

    async def fills(self) -> list[Fill]:
        """Today's trades; the trade book has no tag, so the order book supplies it."""
        trades, book = await asyncio.gather(self._run(self.client.trades), self.list_orders())
        tags = {order.broker_order_id: order.client_order_id for order in book if order.broker_order_id}
        received_at = self.clock.now()
        return [fill_from_trade(row, received_at=received_at, tags=tags) for row in trades or []]

    # --- exits ----------------------------------------------------------------------------

    def _limit(self, instrument_key: str, trigger: float) -> float:
        """A leg's LIMIT as `exit_request_for` priced it: GTT details omit the market protection we
        sent, so it is recomputed from the configured offset and the instrument's tick."""
        instrument = self._instruments.get(instrument_key) or Instrument(instrument_key, "", "")
        return limit_below(instrument, trigger, self.config.limit_offset_pct)

    async def _legs(self, instrument_key: str | None = None) -> list[GttLeg]:
        """Our exit legs among all GTTs (of one instrument, when given)."""
        rows = await self._run(self.client.gtts)
        if instrument_key is not None:
            rows = [row for row in rows or [] if row.get("instrument_token") == instrument_key]
        return legs_from_gtts(rows)

    def _exit(self, stop_id: str, target_id: str, request: ExitRequest) -> ExitOrder:
        """The ACTIVE exit `request` describes, on GTTs `stop_id` and `target_id`."""
        key, product = request.instrument.instrument_key, PRODUCT_CODES[self.config.product]

        def leg(gtt_id: str, kind: LegKind) -> GttLeg:
            trigger, limit = leg_prices(request, kind)
            return GttLeg(gtt_id, key, request.quantity, product, kind, trigger, LegState.ACTIVE, limit=limit)

        stop, target = leg(stop_id, LegKind.STOP), leg(target_id, LegKind.TARGET)
        return exit_from_legs(stop, target, tag=request.tag, updated_at=self.clock.now())

    async def _place_leg(self, request: ExitRequest, kind: LegKind) -> str:
        body = gtt_leg_body(request, kind, PRODUCT_CODES[self.config.product])
        return gtt_id_from_place(await self._run(self.client.place_gtt, body))

    async def place_exit_oco(self, request: ExitRequest) -> ExitOrder:
        """Place the stop leg, then the target leg. Idempotent: waiting legs matching the request
        that an earlier (timed-out) attempt created are reused, never doubled. If the target leg is
        refused, the stop leg placed by this call is cancelled again."""
        check_exit_request(request)
        stop_id: str | None = None
        target_id: str | None = None
        for stop_leg, target_leg in pair_legs(await self._legs(request.instrument.instrument_key)):
            stop_ok = stop_leg is not None and _leg_matches(stop_leg, request, LegKind.STOP)
            target_ok = target_leg is not None and _leg_matches(target_leg, request, LegKind.TARGET)
            if stop_ok and target_ok:  # the whole exit exists already
                assert stop_leg is not None and target_leg is not None
                stop_id, target_id = stop_leg.gtt_id, target_leg.gtt_id
                break
            # a matching leg whose sibling is gone or no longer waits is reused, not doubled
            if stop_ok and not _waiting(target_leg) and stop_id is None:
                stop_id = stop_leg.gtt_id if stop_leg else None
            if target_ok and not _waiting(stop_leg) and target_id is None:
                target_id = target_leg.gtt_id if target_leg else None
        placed_stop = stop_id is None
        if stop_id is None:
            stop_id = await self._place_leg(request, LegKind.STOP)
        if target_id is None:
            try:
                target_id = await self._place_leg(request, LegKind.TARGET)
            except OrderRejected:
                if placed_stop:
                    await self._cancel_leg(stop_id)
                raise
        return self._exit(stop_id, target_id, request)

    async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder:
        stop_id, target_id = split_exit_id(exit_id)
        if stop_id is None or target_id is None:
            raise OrderRejected(f"exit {exit_id} lacks a leg at Upstox; cancel it and place a new exit")
        check_exit_request(request)
        await self._run(self.client.modify_gtt, gtt_modify_body(stop_id, request, LegKind.STOP))
        await self._run(self.client.modify_gtt, gtt_modify_body(target_id, request, LegKind.TARGET))
        return self._exit(stop_id, target_id, request)

    async def _cancel_leg(self, gtt_id: str) -> bool:
        """Cancel one leg: True if cancelled now, False if it had already ended (fired, cancelled)."""
        try:
            await self._run(self.client.cancel_gtt, gtt_id)
            return True
        except OrderRejected:
            rows = await self._run(self.client.gtts, gtt_id)
            leg = leg_from_gtt(rows[0]) if rows else None
            if leg is None or leg.state is LegState.ACTIVE:
                raise
            return False

    async def cancel_exit(self, exit_id: str) -> None:
        """Cancel both legs; OrderRejected when neither was still waiting (the exit had ended)."""
        cancelled = [await self._cancel_leg(gtt_id) for gtt_id in split_exit_id(exit_id) if gtt_id is not None]
        if not any(cancelled):
            raise OrderRejected(f"Upstox exit {exit_id} has no waiting leg left to cancel")

    async def _end_orphan(self, leg: GttLeg | None, sibling: GttLeg | None) -> GttLeg | None:
        """OCO: `leg` still waits though its sibling fired or ended, so cancel it (returned
        CANCELLED). A leg without a sibling is a half-built exit, left for the retry to complete."""
        if leg is None or sibling is None or not _waiting(leg) or _waiting(sibling):
            return leg
        try:
            await self._cancel_leg(leg.gtt_id)
        except TemporaryBrokerError as exc:  # the next call tries again
            log.warning("could not cancel orphaned Upstox GTT leg %s: %s", leg.gtt_id, exc)
            return leg
        return replace(leg, state=LegState.CANCELLED)

    async def list_exits(self) -> list[ExitOrder]:
        """All exits (pairs of our GTT legs) with their status; enforces OCO (module docstring)."""
        exits = []
        priced = [replace(leg, limit=self._limit(leg.instrument_key, leg.trigger)) for leg in await self._legs()]
        for stop, target in pair_legs(priced):
            stop, target = await self._end_orphan(stop, target), await self._end_orphan(target, stop)
            exits.append(exit_from_legs(stop, target))
        fired = [e for e in exits if e.status.is_terminal and e.status is not ExitStatus.CANCELLED]
        if any(e.triggered_order_id for e in fired):
            prices = {o.broker_order_id: o.average_price for o in await self.list_orders() if o.filled_quantity}
            for exit_order in fired:
                exit_order.exit_price = prices.get(exit_order.triggered_order_id)
        return exits

    # --- funds ----------------------------------------------------------------------------

    async def funds(self) -> float | None:
        """Cash free to trade in the equity segment (`get-funds-and-margin?segment=SEC`: `available_margin`)."""
        return funds_from_payload(await self._run(self.client.funds))
