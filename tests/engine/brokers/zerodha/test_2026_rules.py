"""Kite's rules since 1 April 2026 (SEBI's retail-algo framework), as the sandbox enforces them and the
adapter meets them: a MARKET or SL-M order needs a non-zero `market_protection` (else HTTP 400
InputException "Market orders without market protection are not allowed via API"), and at most 10
order requests a second (else HTTP 429 NetworkException "Too many requests"); neither refusal is booked."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from engine.brokers.base import ConfigError
from engine.brokers.zerodha.config import ZerodhaConfig
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.clock import SteppedClock
from engine.execution import OrderManager, make_client_order_id
from engine.models import Instrument, OrderIntent, OrderPurpose, OrderStatus, OrderType, Side
from engine.storage.db import init_db
from tests.engine.brokers.wire import request_json

PROTECTION_REFUSED = {"status": "error", "message": "Market orders without market protection are not allowed via API",
                      "data": None, "error_type": "InputException"}
TOO_MANY = {"status": "error", "message": "Too many requests", "data": None, "error_type": "NetworkException"}


def _post_order(sandbox: KiteSandbox, tag: str, **fields: Any) -> tuple[int, Any]:
    form = {"exchange": "NSE", "tradingsymbol": "RELIANCE", "transaction_type": "BUY", "quantity": 1,
            "product": "CNC", "order_type": "MARKET", "validity": "DAY", "tag": tag, **fields}
    headers = {"X-Kite-Version": "3", "Authorization": f"token {sandbox.api_key}:{sandbox.access_token}",
               "Content-Type": "application/x-www-form-urlencoded"}
    return request_json(f"{sandbox.url}/orders/regular", "POST", urlencode(form).encode(), headers)


def test_market_and_sl_m_orders_without_protection_are_refused_unbooked(sandbox: KiteSandbox) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    assert _post_order(sandbox, "NOPROT") == (400, PROTECTION_REFUSED)
    assert _post_order(sandbox, "ZEROPROT", market_protection=0) == (400, PROTECTION_REFUSED)
    assert _post_order(sandbox, "SLM", order_type="SL-M", trigger_price=2950.0) == (400, PROTECTION_REFUSED)
    assert sandbox.orders() == []  # Kite books no refused request
    status, body = _post_order(sandbox, "PROT", market_protection=2)
    assert (status, body["status"]) == (200, "success")
    [order] = sandbox.orders()
    assert (order["tag"], order["status"], order["market_protection"]) == ("PROT", "COMPLETE", 2.0)
    status, body = _post_order(sandbox, "AUTO", market_protection=-1)  # Kite's "automatic" protection
    assert (status, body["status"]) == (200, "success")


def test_more_than_ten_orders_a_second_are_answered_429(sandbox: KiteSandbox, clock: SteppedClock) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    answers = [_post_order(sandbox, f"RATE{n}", order_type="LIMIT", price=2800.0)[0] for n in range(11)]
    assert answers == [200] * 10 + [429]
    assert _post_order(sandbox, "RATE11", order_type="LIMIT", price=2800.0) == (429, TOO_MANY)
    assert len(sandbox.orders()) == 10
    clock.advance(1.0)  # a second later there is room again
    assert _post_order(sandbox, "RATE12", order_type="LIMIT", price=2800.0)[0] == 200


async def test_the_adapter_protects_market_orders_with_the_configured_percent(
    sandbox: KiteSandbox, clock: SteppedClock, instrument: Instrument
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    config = sandbox.config()
    protected = ZerodhaConfig(api_key=config.api_key, access_token=config.access_token, root_url=config.root_url,
                              market_protection=3.0)
    kite = ZerodhaBroker(protected, clock, instruments=[instrument])
    try:
        plain = await kite.place_order(OrderIntent("PLAIN", instrument, Side.BUY, 1))
        own = await kite.place_order(OrderIntent("OWN", instrument, Side.BUY, 1, market_protection=1.5))
        assert (plain.status, own.status) == (OrderStatus.OPEN, OrderStatus.OPEN)
    finally:
        await kite.close()
    assert {o["tag"]: o["market_protection"] for o in sandbox.orders()} == {"PLAIN": 3.0, "OWN": 1.5}


async def test_the_order_manager_keeps_a_burst_of_exits_within_ten_a_second(
    sandbox: KiteSandbox, broker: ZerodhaBroker, clock: SteppedClock, instrument: Instrument, tmp_path: Any
) -> None:
    sandbox.set_last_price("RELIANCE", 2900.0)
    manager = OrderManager(broker, init_db(f"sqlite:///{tmp_path / 'burst.db'}"), clock, trading_day=clock.today())
    started = clock.now()
    orders = [await manager.submit(OrderIntent(make_client_order_id(clock.today(), f"burst{n}", OrderPurpose.EXIT),
                                               instrument, Side.BUY, 1, order_type=OrderType.MARKET,
                                               market_protection=2.0, purpose=OrderPurpose.EXIT))
              for n in range(25)]
    assert {o.status for o in orders} == {OrderStatus.OPEN}  # all accepted (none refused, none left unsent)
    assert len(sandbox.orders()) == 25
    assert clock.now() - started >= timedelta(seconds=2)  # 25 at 10 a second: the client waited on the clock
    assert 429 not in {request.status for request in sandbox.handled}


def test_a_protection_config_out_of_kites_range_is_refused(sandbox: KiteSandbox) -> None:
    config = sandbox.config()
    for percent in (0.0, -1.0, 100.5):
        with pytest.raises(ConfigError, match="market_protection must be a percent above 0 and at most 100"):
            ZerodhaConfig(api_key="k", access_token="t", root_url=config.root_url, market_protection=percent)
