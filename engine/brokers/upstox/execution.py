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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from engine.brokers.base import Broker, OrderRejected, TemporaryBrokerError
from engine.brokers.upstox.client import UpstoxClient
from engine.brokers.upstox.config import PRODUCT_CODES, UPSTOX_CAPABILITIES, UpstoxConfig
from engine.brokers.upstox.parse import (
    GttLeg,
    LegKind,
    LegState,
    check_exit_request,
    exit_from_legs,
    fill_from_trade,
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


class UpstoxBroker(Broker):
    name = "upstox"
    capabilities = UPSTOX_CAPABILITIES

    def __init__(self, config: UpstoxConfig, clock: Clock, *, instruments: Iterable[Instrument] = ()) -> None:
        """`instruments` supply tick sizes (for the GTT limits `list_exits` reports); unknown
        instruments get NSE's 0.05."""
        self.config = config
        self.clock = clock
        self.client = UpstoxClient(config)
        self._instruments = {i.instrument_key: i for i in instruments}
        self._sent_tags: set[str] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, credentials: Credentials, *, clock: Clock, instruments: Iterable[Instrument] = ()
    ) -> UpstoxBroker:
        """From UPSTOX_ACCESS_TOKEN / UPSTOX_API_URL / UPSTOX_ORDER_URL and `execution.product`."""
        config = UpstoxConfig.from_credentials(
            credentials,
            product=Product(settings.execution.product),
            limit_offset_pct=settings.execution.gtt_limit_offset_pct,
        )
        return cls(config, clock, instruments=instruments)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
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
        body = place_order_body(intent, PRODUCT_CODES[intent.product])
        self._sent_tags.add(intent.client_order_id)
        order_id = placed_order_id(await self._run(self.client.place_order, body))
        return Order(
            client_order_id=intent.client_order_id,
            instrument_key=intent.instrument.instrument_key,
            side=intent.side,
            quantity=intent.quantity,
            status=OrderStatus.OPEN,
            broker_order_id=order_id,
            order_type=intent.order_type,
            price=intent.price,
            trigger_price=intent.trigger_price,
            updated_at=self.clock.now(),
        )

    async def find_order(self, client_order_id: str) -> Order | None:
        """The order whose tag is `client_order_id`, from today's order book (None if absent)."""
        matches = [order for order in await self.list_orders() if order.client_order_id == client_order_id]
        if len(matches) > 1:
            log.error("Upstox has %d orders tagged %s; reporting the latest", len(matches), client_order_id)
        return matches[-1] if matches else None

    async def order_status(self, broker_order_id: str) -> Order:
        """One order's latest state (GET /v2/order/details)."""
        return order_from_payload(await self._run(self.client.order_details, broker_order_id))

    async def cancel_order(self, broker_order_id: str) -> None:
        await self._run(self.client.cancel_order, broker_order_id)

    async def list_orders(self) -> list[Order]:
        return orders_from_book(await self._run(self.client.order_book))

    async def positions(self) -> list[BrokerPosition]:
        """Net short-term positions (today's trades and carried intraday/F&O positions). Delivery
        holdings from earlier days are in /v2/portfolio/long-term-holdings and not included."""
        return positions_from_payload(await self._run(self.client.positions))

    async def fills(self) -> list[Fill]:
        """Today's trades; the trade book has no tag, so the order book supplies it."""
        trades, book = await asyncio.gather(self._run(self.client.trades), self.list_orders())
        tags = {order.broker_order_id: order.client_order_id for order in book}
        result = []
        for row in trades or []:
            fill = fill_from_trade(row)
            if not fill.client_order_id:
                fill = Fill(
                    fill.fill_id,
                    tags.get(fill.broker_order_id, ""),
                    fill.broker_order_id,
                    fill.instrument_key,
                    fill.side,
                    fill.quantity,
                    fill.price,
                    fill.ts,
                )
            result.append(fill)
        return result

    # --- exits ----------------------------------------------------------------------------

    def _with_limit(self, leg: GttLeg) -> GttLeg:
        """GTT details omit the market protection we sent, so the leg's LIMIT is recomputed with the
        configured offset, as `exit_request_for` priced it."""
        instrument = self._instruments.get(leg.instrument_key) or Instrument(leg.instrument_key, "", "")
        limit = instrument.round_price(leg.trigger * (1 - self.config.limit_offset_pct / 100), "down")
        return replace(leg, limit=limit)

    async def _legs(self) -> list[GttLeg]:
        return [self._with_limit(leg) for leg in legs_from_gtts(await self._run(self.client.gtts))]

    def _new_leg(self, gtt_id: str, request: ExitRequest, kind: LegKind) -> GttLeg:
        trigger, limit = leg_prices(request, kind)
        key, product = request.instrument.instrument_key, PRODUCT_CODES[self.config.product]
        return GttLeg(gtt_id, key, request.quantity, product, kind, trigger, LegState.ACTIVE, limit=limit)

    async def _place_leg(self, request: ExitRequest, kind: LegKind) -> GttLeg:
        body = gtt_leg_body(request, kind, PRODUCT_CODES[self.config.product])
        return self._new_leg(gtt_id_from_place(await self._run(self.client.place_gtt, body)), request, kind)

    async def place_exit_oco(self, request: ExitRequest) -> ExitOrder:
        """Place the stop leg, then the target leg. Idempotent: live legs matching the request that
        an earlier (timed-out) attempt created are reused, never doubled. If the target leg is
        refused, the stop leg placed by this call is cancelled again."""
        check_exit_request(request)
        stop: GttLeg | None = None
        target: GttLeg | None = None
        for stop_leg, target_leg in pair_legs(await self._legs()):
            stop_ok = stop_leg is not None and _leg_matches(stop_leg, request, LegKind.STOP)
            target_ok = target_leg is not None and _leg_matches(target_leg, request, LegKind.TARGET)
            if stop_ok and target_ok:
                return exit_from_legs(stop_leg, target_leg, tag=request.tag)
            if stop_ok and target_leg is None and stop is None:
                stop = stop_leg
            if target_ok and stop_leg is None and target is None:
                target = target_leg
        placed_stop = stop is None
        if stop is None:
            stop = await self._place_leg(request, LegKind.STOP)
        if target is None:
            try:
                target = await self._place_leg(request, LegKind.TARGET)
            except OrderRejected:
                if placed_stop:
                    await self._cancel_leg(stop.gtt_id)
                raise
        return exit_from_legs(stop, target, tag=request.tag, updated_at=self.clock.now())

    async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder:
        stop_id, target_id = split_exit_id(exit_id)
        if stop_id is None or target_id is None:
            raise OrderRejected(f"exit {exit_id} lacks a leg at Upstox; cancel it and place a new exit")
        check_exit_request(request)
        await self._run(self.client.modify_gtt, gtt_modify_body(stop_id, request, LegKind.STOP))
        await self._run(self.client.modify_gtt, gtt_modify_body(target_id, request, LegKind.TARGET))
        return exit_from_legs(
            self._new_leg(stop_id, request, LegKind.STOP),
            self._new_leg(target_id, request, LegKind.TARGET),
            tag=request.tag,
            updated_at=self.clock.now(),
        )

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

    async def list_exits(self) -> list[ExitOrder]:
        """All exits (pairs of our GTT legs) with their status; enforces OCO (module docstring)."""
        exits = []
        for stop, target in pair_legs(await self._legs()):
            legs = [leg for leg in (stop, target) if leg is not None]
            if len(legs) == 2 and any(leg.state is not LegState.ACTIVE for leg in legs):
                for leg in legs:
                    if leg.state is LegState.ACTIVE:
                        try:
                            await self._cancel_leg(leg.gtt_id)
                        except TemporaryBrokerError as exc:  # the next call tries again
                            log.warning("could not cancel orphaned Upstox GTT leg %s: %s", leg.gtt_id, exc)
                            continue
                        stop = replace(stop, state=LegState.CANCELLED) if stop is leg else stop
                        target = replace(target, state=LegState.CANCELLED) if target is leg else target
            exits.append(exit_from_legs(stop, target))
        fired = [e for e in exits if e.status.is_terminal and e.status is not ExitStatus.CANCELLED]
        if any(e.triggered_order_id for e in fired):
            prices = {o.broker_order_id: o.average_price for o in await self.list_orders() if o.filled_quantity}
            for exit_order in fired:
                exit_order.exit_price = prices.get(exit_order.triggered_order_id)
        return exits
