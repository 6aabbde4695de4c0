"""`Broker.funds()` on Kite: the parser on the published payloads (kiteconnect-mocks), and the real
adapter against the sandbox's `GET /user/margins/equity`."""

from __future__ import annotations

import pytest

from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.parse import funds_from_margins
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.models import Instrument, OrderIntent, OrderType, Product, Side
from tests.engine.brokers.zerodha.kite_mocks import mock_data


def test_equity_margins_payload_gives_the_net_cash() -> None:
    assert funds_from_margins(mock_data("margins_equity.json")) == pytest.approx(99725.05)


def test_all_segments_payload_uses_the_equity_segment() -> None:
    assert funds_from_margins(mock_data("margins.json")) == pytest.approx(99725.05)


def test_a_disabled_or_empty_segment_reports_no_cash() -> None:
    assert funds_from_margins({"enabled": False, "net": 5.0}) is None
    assert funds_from_margins({"enabled": True, "available": {"live_balance": 12.5}}) == 12.5
    assert funds_from_margins({"enabled": True, "net": "lots"}) is None
    assert funds_from_margins({}) is None


async def test_the_adapter_reads_the_sandbox_cash_after_a_buy(
    broker: ZerodhaBroker, sandbox: KiteSandbox, instrument: Instrument
) -> None:
    sandbox.account.opening_balance = 200_000.0
    assert await broker.funds() == 200_000.0
    sandbox.set_last_price(instrument.symbol, 1000.0)
    intent = OrderIntent(client_order_id="ATFUNDS0001", instrument=instrument, side=Side.BUY, quantity=50,
                         order_type=OrderType.MARKET, product=Product.CNC)
    await broker.place_order(intent)
    assert await broker.funds() == 150_000.0  # 2,00,000 less 50 × 1,000 bought
    margins = broker.client.kite.margins()
    assert margins["equity"]["utilised"]["debits"] == 50_000.0 and margins["commodity"]["enabled"] is False
