"""UpstoxBroker on the real upstox-python-sdk: hosts, tag, token, the Configuration-sharing trap and
the error mapping of every status class."""

from __future__ import annotations

from datetime import date

import pytest
import upstox_client

from engine.brokers.base import ConfigError, OrderRejected, TemporaryBrokerError, TokenExpired
from engine.brokers.upstox import UpstoxBroker, UpstoxConfig
from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.clock import SteppedClock
from engine.execution import exit_request_for, make_client_order_id
from engine.models import Instrument, OrderIntent, Product, Side
from engine.settings import Credentials, load_settings
from tests.engine.brokers.upstox.conftest import TOKEN, make_config


def _intent(instrument: Instrument, key: str, quantity: int = 5) -> OrderIntent:
    return OrderIntent(make_client_order_id(date(2024, 6, 4), key), instrument, Side.BUY, quantity)


async def test_orders_go_to_the_order_host_and_everything_else_to_the_api_host(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, order_url: str, instrument: Instrument
) -> None:
    sandbox.set_last_price(instrument.instrument_key, 100.0)
    placed = await broker.place_order(_intent(instrument, "hosts"))
    assert placed.broker_order_id is not None
    await broker.list_orders()
    await broker.place_exit_oco(exit_request_for(instrument, 5, stop=95.0, target=110.0, last_price=100.0, tag="H"))
    api_url = sandbox.url
    assert sandbox.calls("POST", "/v3/order/place", url=order_url) == 1
    assert sandbox.calls("POST", "/v3/order/place", url=api_url) == 0
    assert sandbox.calls("GET", "/v2/order/retrieve-all", url=api_url) >= 1
    assert sandbox.calls("GET", "/v2/order/retrieve-all", url=order_url) == 0
    assert sandbox.calls("POST", "/v3/order/gtt/place", url=api_url) == 2  # GTTs live on the API host


async def test_place_sends_our_client_order_id_as_tag_in_a_v3_body(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    intent = _intent(instrument, "tagged", quantity=3)
    placed = await broker.place_order(intent)
    [row] = sandbox.orders_tagged(intent.client_order_id)
    assert row["order_id"] == placed.broker_order_id
    assert (row["product"], row["order_type"], row["transaction_type"], row["quantity"]) == ("D", "MARKET", "BUY", 3)
    assert row["status"] == "open"  # no price fed yet


async def test_mis_intent_is_sent_as_intraday(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    intent = OrderIntent(make_client_order_id(date(2024, 6, 4), "mis"), instrument, Side.BUY, 1, product=Product.MIS)
    await broker.place_order(intent)
    assert sandbox.orders_tagged(intent.client_order_id)[0]["product"] == "I"


async def test_two_brokers_never_share_hosts_or_tokens_even_with_a_poisoned_sdk_default(
    clock: SteppedClock, instrument: Instrument, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstox_client.Configuration, "_default", None)  # restored after the test
    poison = upstox_client.Configuration()
    poison.host = poison.order_host = "http://127.0.0.1:9"
    poison.access_token = "poison"
    upstox_client.Configuration.set_default(poison)
    # the trap: an SDK-built Configuration now silently inherits the poisoned host and token
    assert upstox_client.Configuration().host == "http://127.0.0.1:9"

    with (
        UpstoxSandbox(access_token="token-a", clock=clock) as sandbox_a,
        UpstoxSandbox(access_token="token-b", clock=clock) as sandbox_b,
    ):
        broker_a = UpstoxBroker(make_config(sandbox_a, sandbox_a.url, token="token-a"), clock)
        broker_b = UpstoxBroker(make_config(sandbox_b, sandbox_b.url, token="token-b"), clock)
        try:
            intent_a = _intent(instrument, "broker-a")
            await broker_a.place_order(intent_a)
            assert await broker_b.find_order(intent_a.client_order_id) is None
            await broker_b.place_order(_intent(instrument, "broker-b"))
            assert len(await broker_a.list_orders()) == 1 and len(await broker_b.list_orders()) == 1
            assert sandbox_a.calls("POST", "/v3/order/place") == 1 and sandbox_b.calls("POST", "/v3/order/place") == 1
            assert broker_a.client.configuration is not broker_b.client.configuration
            assert (broker_a.client.configuration.host, broker_b.client.configuration.host) == (
                sandbox_a.url,
                sandbox_b.url,
            )
        finally:
            await broker_a.close()
            await broker_b.close()
    # and building our brokers did not change the SDK default either
    assert upstox_client.Configuration().access_token == "poison"


async def test_bad_token_fails_connect_and_a_revoked_token_fails_orders(
    sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock, instrument: Instrument
) -> None:
    stranger = UpstoxBroker(make_config(sandbox, order_url, token="wrong"), clock)
    with pytest.raises(TokenExpired, match="UDAPI100050"):
        await stranger.connect()
    await stranger.close()
    broker = UpstoxBroker(make_config(sandbox, order_url), clock)
    await broker.connect()
    sandbox.access_token = "rotated"
    with pytest.raises(TokenExpired):
        await broker.place_order(_intent(instrument, "after-logout"))
    assert sandbox.orders == {}
    await broker.close()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, OrderRejected),
        (401, TokenExpired),
        (403, TokenExpired),
        (404, OrderRejected),
        (422, OrderRejected),
        (429, TemporaryBrokerError),
        (500, TemporaryBrokerError),
        (503, TemporaryBrokerError),
    ],
)
async def test_each_http_status_maps_to_its_error_class(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument, status: int, error: type[Exception]
) -> None:
    sandbox.inject_fault("GET", "/v2/order/retrieve-all", status)
    with pytest.raises(error, match=f"HTTP {status}"):
        await broker.list_orders()
    sandbox.inject_fault("POST", "/v3/order/place", status)
    with pytest.raises(error):
        await broker.place_order(_intent(instrument, f"status-{status}"))
    assert sandbox.orders == {}  # an injected error status never acts
    assert await broker.list_orders() == []  # and the next call works


async def test_unreachable_host_is_temporary(sandbox: UpstoxSandbox, order_url: str, clock: SteppedClock) -> None:
    broker = UpstoxBroker(make_config(sandbox, order_url), clock)
    sandbox.stop()
    with pytest.raises(TemporaryBrokerError, match="unreachable"):
        await broker.list_orders()
    await broker.close()


async def test_rejected_business_request_is_order_rejected(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    with pytest.raises(OrderRejected, match="not found"):
        await broker.cancel_order("999")
    with pytest.raises(OrderRejected, match="UDAPI"):
        await broker.modify_exit(
            "GTT-NOPE+GTT-NADA", exit_request_for(instrument, 5, stop=95.0, target=110.0, last_price=100.0, tag="M")
        )


def test_config_needs_a_token_and_http_urls() -> None:
    with pytest.raises(ConfigError, match="UPSTOX_ACCESS_TOKEN"):
        UpstoxConfig(access_token=" ")
    with pytest.raises(ConfigError, match="UPSTOX_ORDER_URL"):
        UpstoxConfig(access_token="t", order_url="api-hft.upstox.com")
    with pytest.raises(ConfigError, match="UPSTOX_ACCESS_TOKEN"):
        UpstoxConfig.from_credentials(Credentials(upstox_access_token=None))


LOOPBACK_CREDENTIALS = Credentials(
    upstox_access_token="secret",  # type: ignore[arg-type]
    upstox_api_url="http://127.0.0.1:1/",
    upstox_order_url="http://127.0.0.1:2",
)


def test_from_settings_reads_hosts_token_product_gtt_offset_and_the_order_rules(clock: SteppedClock) -> None:
    settings = load_settings(execution={"product": "MIS", "gtt_limit_offset_pct": 1.0, "market_protection": 3.0},
                             entry_windows=["14:50-15:05"],  # MIS must end before the square-off
                             upstox={"algo_name": " my-algo ", "orders_per_second": 50, "orders_per_minute": 900})
    broker = UpstoxBroker.from_settings(settings, LOOPBACK_CREDENTIALS, clock=clock)
    assert broker.config.api_url == "http://127.0.0.1:1" and broker.config.order_url == "http://127.0.0.1:2"
    assert broker.config.product is Product.MIS and broker.config.limit_offset_pct == 1.0
    assert (broker.config.algo_name, broker.config.market_protection) == ("my-algo", 3.0)
    assert (broker.capabilities.orders_per_second, broker.capabilities.orders_per_minute) == (50.0, 900)
    assert UpstoxBroker.capabilities.orders_per_second == 10.0  # the class default is not touched
    assert broker.client.configuration.access_token == "secret"
    assert "secret" not in repr(broker.config)
    broker.client.close()


def test_from_settings_refuses_an_empty_algo_name_and_market_protection_beyond_upstox_range(
    clock: SteppedClock,
) -> None:
    with pytest.raises(ConfigError, match=r"upstox\.algo_name.*X-Algo-Name"):
        UpstoxBroker.from_settings(load_settings(), LOOPBACK_CREDENTIALS, clock=clock)
    settings = load_settings(upstox={"algo_name": "a"}, execution={"market_protection": 30.0})
    with pytest.raises(ConfigError, match="market_protection -1 \\(automatic\\) or 0 to 25 percent, got 30"):
        UpstoxBroker.from_settings(settings, LOOPBACK_CREDENTIALS, clock=clock)
    with pytest.raises(ConfigError, match="order rates"):
        UpstoxConfig(access_token="t", orders_per_second=51)


def test_capabilities_are_frozen() -> None:
    assert UpstoxBroker.capabilities.gtt is True and UpstoxBroker.capabilities.max_tag_length == 20
    with pytest.raises(AttributeError):
        UpstoxBroker.capabilities.gtt = False  # type: ignore[misc]


async def test_token_constant_is_what_the_sandbox_accepts(sandbox: UpstoxSandbox) -> None:
    assert sandbox.access_token == TOKEN
