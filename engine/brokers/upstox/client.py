"""The only module that imports `upstox_client` (upstox-python-sdk). Blocking calls; the broker
runs them in a thread. Every call returns the envelope's `data` as plain JSON (we read the raw
body rather than the SDK's models, whose enum checks would crash on a value Upstox adds later) and
raises only `engine.brokers.base` errors.

Two SDK traps handled here:
- `upstox_client.Configuration()` returns a copy of a class-level default (`TypeWithDefault`), and
  that copy is shallow, so whatever one part of the process set as default (another token, a
  sandbox host) leaks into every later instance. We build each Configuration with `type.__call__`,
  which skips the default, and set both hosts and the token explicitly.
- urllib3's default Retry resends PUT/DELETE after a read error or dropped response on its own.
  A cancel or GTT modify must be retried only by our order manager, after a lookup, so the pool
  gets `Retry(total=0)`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import certifi
import upstox_client
import urllib3
from upstox_client.rest import ApiException
from urllib3.util.retry import Retry

from engine.brokers.base import BrokerError, TemporaryBrokerError
from engine.brokers.upstox.config import UpstoxConfig
from engine.brokers.upstox.parse import error_from_response, unwrap
from engine.secrets import redact, register_secret

API_VERSION = "2.0"  # the Api-Version header the v2 endpoints expect


def new_configuration(config: UpstoxConfig) -> upstox_client.Configuration:
    """A Configuration of our own: never the SDK's shared class-level default."""
    configuration = type.__call__(upstox_client.Configuration)
    configuration.host = config.api_url
    configuration.order_host = config.order_url
    configuration.access_token = config.access_token
    return configuration


def _read_json(response: Any) -> Any:
    try:
        raw = response.data
    except urllib3.exceptions.HTTPError as exc:
        raise TemporaryBrokerError(redact(f"Upstox answer cut off: {type(exc).__name__}: {exc}")) from None
    finally:
        response.release_conn()
    try:
        return json.loads(raw)
    except ValueError:
        raise TemporaryBrokerError(f"Upstox answered {response.status} with a body that is not JSON") from None


class UpstoxClient:
    """Blocking, thread-safe wrapper over the SDK's OrderApiV3, OrderApi and PortfolioApi."""

    def __init__(self, config: UpstoxConfig) -> None:
        self.config = config
        register_secret(config.access_token)
        self.configuration = new_configuration(config)
        self.api_client = upstox_client.ApiClient(self.configuration)
        self.api_client.rest_client.pool_manager = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            retries=Retry(total=0, redirect=0, raise_on_status=False),
        )
        self.orders_v3 = upstox_client.OrderApiV3(self.api_client)
        self.orders_v2 = upstox_client.OrderApi(self.api_client)
        self.portfolio = upstox_client.PortfolioApi(self.api_client)
        self._timeout = (config.connect_timeout, config.read_timeout)
        self._algo = {"algo_name": config.algo_name} if config.algo_name else {}
        self._closed = threading.Event()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.api_client.pool.close()
        self.api_client.pool.join()
        self.api_client.rest_client.pool_manager.clear()

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call and return the success envelope's data, or raise a mapped error."""
        failure: BrokerError
        try:
            response = method(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            failure = error_from_response(int(exc.status or 0), exc.body, str(exc.reason or ""))
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused/dropped connections
            failure = TemporaryBrokerError(redact(f"Upstox unreachable or no answer: {type(exc).__name__}: {exc}"))
        else:
            return unwrap(_read_json(response))
        raise failure  # outside the except blocks: the SDK's exception (with the raw body) is not chained

    # --- orders ---
    def place_order(self, body: dict[str, Any]) -> Any:
        request = upstox_client.PlaceOrderV3Request(**body)
        return self._call(self.orders_v3.place_order, request, **self._algo)

    def cancel_order(self, order_id: str) -> Any:
        return self._call(self.orders_v3.cancel_order, order_id, **self._algo)

    def order_book(self) -> Any:
        return self._call(self.orders_v2.get_order_book, API_VERSION)

    def order_details(self, order_id: str) -> Any:
        return self._call(self.orders_v2.get_order_status, order_id=order_id)

    def trades(self) -> Any:
        return self._call(self.orders_v2.get_trade_history, API_VERSION)

    def positions(self) -> Any:
        return self._call(self.portfolio.get_positions, API_VERSION)

    def holdings(self) -> Any:
        return self._call(self.portfolio.get_holdings, API_VERSION)

    # --- GTTs ---
    @staticmethod
    def _rules(body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "rules": [upstox_client.GttRule(**rule) for rule in body["rules"]]}

    def place_gtt(self, body: dict[str, Any]) -> Any:
        request = upstox_client.GttPlaceOrderRequest(**self._rules(body))
        return self._call(self.orders_v3.place_gtt_order, request, **self._algo)

    def modify_gtt(self, body: dict[str, Any]) -> Any:
        request = upstox_client.GttModifyOrderRequest(**self._rules(body))
        return self._call(self.orders_v3.modify_gtt_order, request, **self._algo)

    def cancel_gtt(self, gtt_id: str) -> Any:
        request = upstox_client.GttCancelOrderRequest(gtt_order_id=gtt_id)
        return self._call(self.orders_v3.cancel_gtt_order, request, **self._algo)

    def gtts(self, gtt_id: str | None = None) -> Any:
        """All GTTs, or one (still a list) when `gtt_id` is given."""
        kwargs = {"gtt_order_id": gtt_id} if gtt_id else {}
        return self._call(self.orders_v3.get_gtt_order_details, **kwargs)

    # --- market holidays (public endpoints: the SDK sends no token) ---
    def holidays(self) -> Any:
        """GET /v2/market/holidays: this year's HolidayData entries."""
        return self._call(upstox_client.MarketHolidaysAndTimingsApi(self.api_client).get_holidays)

    def holiday(self, day: str) -> Any:
        """GET /v2/market/holidays/{date}: that date's entries."""
        return self._call(upstox_client.MarketHolidaysAndTimingsApi(self.api_client).get_holiday, day)

    # --- funds ---
    def funds(self) -> Any:
        """GET /v2/user/get-funds-and-margin?segment=SEC: the equity segment's funds and margin."""
        return self._call(upstox_client.UserApi(self.api_client).get_user_fund_margin, API_VERSION, segment="SEC")
