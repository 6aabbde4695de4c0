"""ZerodhaBroker: the `Broker` contract on Kite Connect v3.

Orders carry our client_order_id as Kite's `tag`, so `find_order` can look an order up after a
lost answer. Exits are two-leg GTTs (stop below, target above) whose SELL LIMIT legs sit below
their triggers (Kite GTTs place LIMIT orders only). SDK calls block, so each runs in a thread.
Positions are holdings plus Kite's `net` positions of the configured product."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from engine.brokers.base import Broker, acknowledged_order
from engine.brokers.zerodha import parse
from engine.brokers.zerodha.client import KiteClient
from engine.brokers.zerodha.config import EXCHANGE, KITE_CAPABILITIES, ZerodhaConfig
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
    Product,
)

if TYPE_CHECKING:
    from engine.settings import Credentials, Settings

T = TypeVar("T")


class ZerodhaBroker(Broker):
    name = "zerodha"
    capabilities = KITE_CAPABILITIES

    def __init__(self, config: ZerodhaConfig, clock: Clock, *, instruments: Iterable[Instrument] = ()) -> None:
        self.config = config
        self.clock = clock
        self.client = KiteClient(config)
        self._by_symbol = {i.symbol: i.instrument_key for i in instruments}

    @classmethod
    def from_settings(
        cls, settings: Settings, credentials: Credentials, *, clock: Clock, instruments: Iterable[Instrument] = ()
    ) -> ZerodhaBroker:
        config = ZerodhaConfig.from_credentials(credentials, product=Product(settings.execution.product),
                                                market_protection=settings.execution.market_protection)
        return cls(config, clock, instruments=instruments)

    def key_of(self, tradingsymbol: str) -> str:
        """Our instrument key of a Kite tradingsymbol (`NSE:<symbol>` when it is not in the master)."""
        return self._by_symbol.get(tradingsymbol) or f"{EXCHANGE}:{tradingsymbol}"

    async def _run(self, method: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(method, *args)

    async def connect(self) -> None:
        await self._run(self.client.profile)  # TokenExpired now rather than at the first order

    async def close(self) -> None:
        self.client.close()

    # orders -----------------------------------------------------------------------------------
    async def place_order(self, intent: OrderIntent) -> Order:
        self._by_symbol.setdefault(intent.instrument.symbol, intent.instrument.instrument_key)
        params = parse.place_order_params(intent, intent.product, self.config.market_protection)
        order_id = await self._run(self.client.place_order, params)
        return acknowledged_order(intent, order_id, self.clock.now())

    async def get_order(self, broker_order_id: str) -> Order | None:
        """GET /orders/{id}: the order's history, latest state last (cheaper than the whole book)."""
        history = await self._run(self.client.order_history, broker_order_id)
        return parse.order_from_kite(history[-1], self.key_of) if history else None

    async def cancel_order(self, broker_order_id: str) -> None:
        await self._run(self.client.cancel_order, broker_order_id)

    async def list_orders(self) -> list[Order]:
        return parse.orders_from_kite(await self._run(self.client.orders), self.key_of)

    async def fills(self) -> list[Fill]:
        return parse.fills_from_kite(await self._run(self.client.trades), self.key_of, received_at=self.clock.now())

    async def positions(self) -> list[BrokerPosition]:
        """Holdings (earlier days' CNC buys) plus today's net positions: a swing position bought
        yesterday lives in holdings, and reconciling without it would see it "closed by hand"."""
        net = await self._run(self.client.positions)
        holdings = await self._run(self.client.holdings) if self.config.product is Product.CNC else []
        return parse.positions_from_kite(net, holdings, self.key_of, self.config.product)

    # exits ------------------------------------------------------------------------------------
    async def place_exit_oco(self, request: ExitRequest) -> ExitOrder:
        self._by_symbol.setdefault(request.instrument.symbol, request.instrument.instrument_key)
        data = await self._run(self.client.place_gtt, parse.gtt_arguments(request, self.config.product))
        return self._exit_of(parse.trigger_id(data), request)

    def _exit_of(self, exit_id: str, request: ExitRequest) -> ExitOrder:
        return ExitOrder(exit_id=exit_id, instrument_key=request.instrument.instrument_key, quantity=request.quantity,
                         stop_trigger=request.stop_trigger, stop_limit=request.stop_limit,
                         target_trigger=request.target_trigger, target_limit=request.target_limit,
                         status=ExitStatus.ACTIVE, tag=request.tag, updated_at=self.clock.now())

    async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder:
        arguments = parse.gtt_arguments(request, self.config.product)
        data = await self._run(self.client.modify_gtt, exit_id, arguments)
        return self._exit_of(parse.trigger_id(data), request)

    async def cancel_exit(self, exit_id: str) -> None:
        await self._run(self.client.delete_gtt, exit_id)

    async def list_exits(self) -> list[ExitOrder]:
        return parse.exits_from_gtts(await self._run(self.client.gtts), self.key_of)

    # funds ------------------------------------------------------------------------------------
    async def funds(self) -> float | None:
        """Cash free to trade in the equity segment (`margins("equity")`: its `net`)."""
        return parse.funds_from_margins(await self._run(self.client.margins))
