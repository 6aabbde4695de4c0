"""PaperBroker: the `Broker` contract over the one simulated exchange (`engine.sim`).

Matching, partial fills, slippage, GTT exits and holdings are the exchange's (the Kite and Upstox
sandboxes use the same one, so the three venues fill alike); this adapter maps the Broker calls to
it. By default orders wait for the next tick of their instrument (never the price that made us
decide) and market fills pay `slippage_bps` against us; `partial_fill_ratio` fills that fraction
per tick. Exits are two-leg GTTs: a tick at or below the stop (at or above the target) fires a SELL
LIMIT at that leg's limit, which fills on that tick or a later one when the price allows (a gap
through the limit leaves the leg OPEN). A venue refusal (a CNC sell beyond the holding) comes back
as a REJECTED order with its reason; only malformed requests raise `OrderRejected`.

With `db`, `connect()` restores positions and ACTIVE exits from the journal (the same database the
order manager writes), so a restarted process keeps its overnight positions and their exits.
What the journal never saw (an exit that fired but was not synced before the process ended) is
lost with the process: the paper venue lives in memory. Deterministic; times come from the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING

from engine.brokers.base import (
    Broker,
    BrokerCapabilities,
    OrderRejected,
    check_exit_request,
    check_order_intent,
    market_protection_of,
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
    Side,
    Tick,
)
from engine.settings import DEFAULT_MARKET_PROTECTION_PCT
from engine.sim import FillModel, GttLeg, LegState, SimGtt, SimOrder, SimulatedExchange, SimulatorError
from engine.sim import TriggerDirection as Direction

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from engine.settings import Settings
    from engine.storage.memory import Database

STOP, TARGET = "stop", "target"


def exit_legs(request: ExitRequest) -> list[GttLeg]:
    """A long's two-leg exit as exchange GTT legs: SELL LIMIT below the stop, above the target."""
    return [GttLeg(STOP, Direction.BELOW, request.stop_trigger, Side.SELL, request.stop_limit),
            GttLeg(TARGET, Direction.ABOVE, request.target_trigger, Side.SELL, request.target_limit)]


class PaperBroker(Broker):
    name = "paper"
    capabilities = BrokerCapabilities(gtt=True, orders_per_second=1000.0, orders_per_minute=100_000)

    def __init__(
        self,
        clock: Clock,
        *,
        slippage_bps: float = 5.0,
        partial_fill_ratio: float = 1.0,
        fill_model: FillModel | None = None,
        instruments: Iterable[Instrument] = (),
        db: Engine | None = None,
        market_protection: float = DEFAULT_MARKET_PROTECTION_PCT,
    ) -> None:
        """`fill_model`, when given, replaces `slippage_bps` and `partial_fill_ratio` (next-tick fills
        by default, as `FillModel.from_settings` gives every simulated venue). MARKET / SL-M orders
        without a `market_protection` of their own get `market_protection` (percent), as the Zerodha
        adapter sends them: paper fills like the venue it imitates."""
        if fill_model is None:
            fill_model = FillModel(slippage_bps=slippage_bps, partial_fill_ratio=partial_fill_ratio,
                                   fills_at_next_tick=True)
        self.clock = clock
        self.db = db
        self.market_protection = market_protection
        prefix = f"{clock.now():%y%m%d%H%M%S}"
        self._id_prefix = prefix
        self.exchange = SimulatedExchange(
            clock, fill_model=fill_model, instruments=instruments,
            order_id=lambda sequence, _: f"PO{prefix}{sequence:05d}",
            gtt_id=lambda sequence, _: f"PG{prefix}{sequence:05d}")
        # the trade book as `Fill`s, each converted once: a paper book keeps its whole life, which a backtest's
        # polls would otherwise convert again and again
        self._fills: list[Fill] = []

    @classmethod
    def from_settings(
        cls, settings: Settings, clock: Clock, *, instruments: Iterable[Instrument] = (), db: Engine | None = None
    ) -> PaperBroker:
        return cls(clock, fill_model=FillModel.from_settings(settings.paper), instruments=instruments, db=db,
                   market_protection=settings.execution.market_protection)

    def last_price(self, instrument_key: str) -> float | None:
        return self.exchange.last_price(instrument_key)

    # lifecycle --------------------------------------------------------------------------------
    async def connect(self) -> None:
        if self.db is not None and not self.exchange.orders and not self.exchange.gtts:
            self._restore(self.db)

    def _restore(self, db: Database) -> None:
        from engine.storage.journal import journal_store

        journal = journal_store(db)
        held: dict[str, tuple[int, float]] = {}
        for fill in journal.broker_fills(self.name):
            quantity, average = held.get(fill.instrument_key, (0, 0.0))
            if fill.side is Side.BUY:
                average = (quantity * average + fill.quantity * fill.price) / (quantity + fill.quantity)
                quantity += fill.quantity
            else:
                quantity -= fill.quantity
            held[fill.instrument_key] = (quantity, average) if quantity else (0, 0.0)
        for key, (quantity, average) in held.items():
            self.exchange.set_holding(key, Product.CNC, quantity, round(average, 4))
        # ids continue after those of an earlier broker started in the same clock second
        prefix = self._id_prefix
        for used_id in journal.broker_ids(self.name):
            if used_id[2:].startswith(prefix) and used_id[2 + len(prefix):].isdigit():
                self.exchange.sequence = max(self.exchange.sequence, int(used_id[2 + len(prefix):]))
        for row in journal.gtts(self.name, active_only=True):
            legs = [GttLeg(STOP, Direction.BELOW, row.stop_trigger, Side.SELL, row.stop_limit),
                    GttLeg(TARGET, Direction.ABOVE, row.target_trigger, Side.SELL, row.target_limit)]
            now = self.clock.now()
            gtt = SimGtt(gtt_id=row.exit_id, instrument_key=row.instrument_key, quantity=row.quantity,
                         product=Product.CNC, legs=legs, created_at=now, tag=row.tag, updated_at=now)
            self.exchange.gtts[gtt.gtt_id] = gtt
            self.exchange.core(gtt.instrument_key).gtts[gtt.gtt_id] = gtt

    # prices -----------------------------------------------------------------------------------
    async def on_tick(self, tick: Tick) -> None:
        self.exchange.on_tick(tick)

    def tick_feed(self) -> Callable[[Tick], None] | None:
        return self.exchange.tick_feed()

    def exit_changes(self) -> int | None:
        return self.exchange.exit_changes

    # orders -----------------------------------------------------------------------------------
    def _order(self, order: SimOrder) -> Order:
        return Order(client_order_id=order.tag or "", instrument_key=order.instrument_key, side=order.side,
                     quantity=order.quantity, status=order.status, broker_order_id=order.order_id,
                     order_type=order.order_type, price=order.price, trigger_price=order.trigger_price,
                     filled_quantity=order.filled_quantity, average_price=order.average_price, message=order.reason,
                     updated_at=order.updated_at)

    async def place_order(self, intent: OrderIntent) -> Order:
        check_order_intent(intent)
        instrument = intent.instrument
        self.exchange.instruments.setdefault(instrument.instrument_key, instrument)
        order = self.exchange.place_order(
            instrument.instrument_key, intent.side, intent.quantity, intent.order_type, intent.product,
            price=intent.price, trigger_price=intent.trigger_price,
            market_protection=market_protection_of(intent, self.market_protection),
            tag=intent.client_order_id)
        return self._order(order)

    async def find_order(self, client_order_id: str) -> Order | None:
        for order in reversed(self.exchange.orders.values()):
            if order.tag == client_order_id:
                return self._order(order)
        return None

    async def get_order(self, broker_order_id: str) -> Order | None:
        order = self.exchange.orders.get(broker_order_id)
        return self._order(order) if order is not None else None

    async def cancel_order(self, broker_order_id: str) -> None:
        try:
            self.exchange.cancel_order(broker_order_id)
        except SimulatorError as error:
            raise OrderRejected(str(error)) from None

    async def list_orders(self) -> list[Order]:
        return [self._order(order) for order in self.exchange.orders.values()]

    async def fills(self) -> list[Fill]:
        book, converted = self.exchange.fills, self._fills
        if converted and (len(book) < len(converted) or book[len(converted) - 1].fill_id != converted[-1].fill_id):
            converted.clear()  # a book restored or started anew
        orders = self.exchange.orders
        converted.extend(Fill(fill_id=f.fill_id, client_order_id=orders[f.order_id].tag or "",
                              broker_order_id=f.order_id, instrument_key=f.instrument_key, side=f.side,
                              quantity=f.quantity, price=f.price, ts=f.ts) for f in book[len(converted):])
        return list(converted)

    async def positions(self) -> list[BrokerPosition]:
        net: dict[str, tuple[int, float]] = {}  # one position per instrument, whatever its products
        for key, _, quantity, average in self.exchange.net_positions():
            held, held_average = net.get(key, (0, 0.0))
            total = held + quantity
            net[key] = (total, round((held * held_average + quantity * average) / total, 4) if total else 0.0)
        return [BrokerPosition(key, quantity, average) for key, (quantity, average) in net.items() if quantity]

    # exits ------------------------------------------------------------------------------------
    def _exit(self, gtt: SimGtt) -> ExitOrder:
        stop, target = gtt.legs
        fired = gtt.fired_leg
        status = ExitStatus.ACTIVE
        leg_order = self.exchange.orders.get(fired.order_id or "") if fired is not None else None
        if fired is not None and fired.state is LegState.FAILED and (
                leg_order is None or leg_order.status is OrderStatus.REJECTED):
            status = ExitStatus.REJECTED  # a leg cancelled after it fired (a chase) still fired
        elif fired is not None:
            status = ExitStatus.TRIGGERED_STOP if fired.name == STOP else ExitStatus.TRIGGERED_TARGET
        elif not gtt.active:
            status = ExitStatus.CANCELLED
        return ExitOrder(exit_id=gtt.gtt_id, instrument_key=gtt.instrument_key, quantity=gtt.quantity,
                         stop_trigger=stop.trigger_price, stop_limit=stop.limit_price or 0.0,
                         target_trigger=target.trigger_price, target_limit=target.limit_price or 0.0,
                         status=status, tag=gtt.tag or "", updated_at=gtt.updated_at,
                         triggered_order_id=fired.order_id if fired is not None else None)

    async def place_exit_oco(self, request: ExitRequest) -> ExitOrder:
        check_exit_request(request)
        self.exchange.instruments.setdefault(request.instrument.instrument_key, request.instrument)
        key = request.instrument.instrument_key
        # the legs sell the product that holds the position (an intraday one is MIS)
        product = Product.MIS if self.exchange.held(key, Product.MIS) >= request.quantity else Product.CNC
        gtt = self.exchange.place_gtt(key, request.quantity, product, exit_legs(request), tag=request.tag)
        return self._exit(gtt)

    def _active_exit(self, exit_id: str) -> SimGtt:
        gtt = self.exchange.gtts.get(exit_id)
        if gtt is None:
            raise OrderRejected(f"exit {exit_id} does not exist")
        if not gtt.active:
            raise OrderRejected(f"exit {exit_id} is {self._exit(gtt).status}, not ACTIVE")
        return gtt

    async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder:
        self._active_exit(exit_id)
        check_exit_request(request)
        gtt = self.exchange.modify_gtt(exit_id, quantity=request.quantity, legs={
            STOP: (request.stop_trigger, request.stop_limit), TARGET: (request.target_trigger, request.target_limit)})
        return self._exit(gtt)

    async def cancel_exit(self, exit_id: str) -> None:
        self._active_exit(exit_id)
        self.exchange.cancel_gtt(exit_id)

    async def list_exits(self) -> list[ExitOrder]:
        return [self._exit(gtt) for gtt in self.exchange.gtts.values()]

    async def get_exits(self, exit_ids: Collection[str]) -> list[ExitOrder]:
        gtts = self.exchange.gtts
        return [self._exit(gtts[exit_id]) for exit_id in exit_ids if exit_id in gtts]
