"""The only module that imports the Kite Connect SDK: a thin synchronous wrapper that turns SDK
and transport errors into our error classes (see `parse.error_for`), with redacted messages and
without the SDK's exception chained (a gateway may echo the Authorization header into its body)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_errors

from engine.brokers.base import TemporaryBrokerError
from engine.brokers.zerodha.config import VARIETY, ZerodhaConfig
from engine.brokers.zerodha.parse import error_for
from engine.secrets import redact, register_secrets

T = TypeVar("T")


class KiteClient:
    """Blocking calls; the adapter runs them in a thread (`asyncio.to_thread`)."""

    def __init__(self, config: ZerodhaConfig) -> None:
        self.config = config
        register_secrets([config.api_key, config.access_token])
        self.kite = KiteConnect(api_key=config.api_key, access_token=config.access_token, root=config.root_url,
                                timeout=config.timeout)

    def close(self) -> None:
        self.kite.reqsession.close()

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except kite_errors.KiteException as error:
            mapped = error_for(type(error).__name__, getattr(error, "code", None), str(error))
        except requests.RequestException as error:  # timeouts, refused or dropped connections
            mapped = TemporaryBrokerError(redact(f"Kite unreachable: {type(error).__name__}: {error}"))
        except (KeyError, ValueError) as error:  # a 5xx page that is not Kite's JSON envelope
            mapped = TemporaryBrokerError(redact(f"Kite answered with an unexpected payload: {error}"))
        raise mapped  # outside the except blocks: the SDK's error (and its raw body) is not chained

    def profile(self) -> dict[str, Any]:
        return self._call(self.kite.profile)

    def instruments(self, exchange: str) -> list[dict[str, Any]]:
        return list(self._call(self.kite.instruments, exchange))

    def historical_data(self, instrument_token: int, start: str, end: str, interval: str) -> list[dict[str, Any]]:
        return list(self._call(self.kite.historical_data, instrument_token, start, end, interval))

    def place_order(self, params: dict[str, Any]) -> str:
        return str(self._call(self.kite.place_order, variety=VARIETY, **params))

    def cancel_order(self, order_id: str) -> None:
        self._call(self.kite.cancel_order, variety=VARIETY, order_id=order_id)

    def orders(self) -> list[dict[str, Any]]:
        return self._call(self.kite.orders)

    def order_history(self, order_id: str) -> list[dict[str, Any]]:
        return self._call(self.kite.order_history, order_id)

    def trades(self) -> list[dict[str, Any]]:
        return self._call(self.kite.trades)

    def positions(self) -> dict[str, Any]:
        return self._call(self.kite.positions)

    def holdings(self) -> list[dict[str, Any]]:
        return self._call(self.kite.holdings)

    def place_gtt(self, arguments: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.kite.place_gtt, **arguments)

    def modify_gtt(self, trigger_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self._call(self.kite.modify_gtt, trigger_id, **arguments)

    def delete_gtt(self, trigger_id: str) -> dict[str, Any]:
        return self._call(self.kite.delete_gtt, trigger_id)

    def gtts(self) -> list[dict[str, Any]]:
        return self._call(self.kite.get_gtts)

    def margins(self) -> dict[str, Any]:
        """GET /user/margins/equity: the equity segment's funds."""
        return self._call(self.kite.margins, "equity")
