"""The broker's trade book, read at most once per pass over several orders."""

from __future__ import annotations

from engine.brokers.base import Broker
from engine.models import Fill


class TradeBook:
    """Today's fills at the broker, read on first need and reused however many orders of one pass
    (`open_orders`, a reconciliation) need them."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._fills: list[Fill] | None = None
        self._read = False

    async def fills(self) -> list[Fill] | None:
        if not self._read:
            self._fills = await self._broker.fills()
            self._read = True
        return self._fills
