"""`Broker.funds()` on Upstox: the parser on the documented payload, and the real adapter (SDK
UserApi.get_user_fund_margin) against the sandbox's `GET /v2/user/get-funds-and-margin`."""

from __future__ import annotations

import pytest

from engine.brokers.upstox import UpstoxBroker
from engine.brokers.upstox.parse import funds_from_payload, unwrap
from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.models import Instrument, OrderIntent, OrderType, Product, Side
from tests.engine.brokers.upstox.conftest import load_resource


def test_documented_payload_gives_the_equity_available_margin() -> None:
    assert funds_from_payload(unwrap(load_resource("funds_and_margin.json"))) == pytest.approx(15507.46)


def test_a_payload_without_the_number_reports_no_cash() -> None:
    assert funds_from_payload({"commodity": {"available_margin": 5.0}}) is None
    assert funds_from_payload({"equity": {"available_margin": None}}) is None
    assert funds_from_payload([]) is None


async def test_the_adapter_reads_the_sandbox_cash_after_a_buy(
    broker: UpstoxBroker, sandbox: UpstoxSandbox, instrument: Instrument
) -> None:
    sandbox.account.opening_balance = 300_000.0
    assert await broker.funds() == 300_000.0
    sandbox.set_last_price(instrument.instrument_key, 2000.0)
    intent = OrderIntent(client_order_id="ATFUNDS0002", instrument=instrument, side=Side.BUY, quantity=10,
                         order_type=OrderType.MARKET, product=Product.CNC)
    await broker.place_order(intent)
    assert await broker.funds() == 280_000.0
    assert sandbox.calls("GET", "/v2/user/get-funds-and-margin") == 2
