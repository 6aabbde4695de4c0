"""Upstox adapter configuration: hosts, token, timeouts, the algo name, order rates and the
broker's capabilities."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from engine.brokers.base import BrokerCapabilities, ConfigError, check_http_url
from engine.models import Product
from engine.settings import DEFAULT_MARKET_PROTECTION_PCT, Credentials

# Upstox's order APIs (place, modify, cancel, GTT place/modify/cancel), each per user: 10/s and
# 500/min for an algo not registered with the exchange (50/s once registered); HTTP 429 beyond.
UPSTOX_CAPABILITIES = BrokerCapabilities(
    gtt=True,
    bracket_orders=False,
    orders_per_second=10.0,
    orders_per_minute=500,
    max_tag_length=20,
)
MAX_ORDERS_PER_SECOND = 50.0  # the registered-algo tier
# `market_protection` on MARKET / SL-M orders: -1 lets Upstox choose, else a percent from 0 (none) to 25
AUTO_MARKET_PROTECTION = -1.0
MAX_MARKET_PROTECTION = 25.0


def valid_market_protection(value: float) -> bool:
    """Whether Upstox accepts `value` as `market_protection` (its Market Price Protection rules)."""
    return value == AUTO_MARKET_PROTECTION or 0 <= value <= MAX_MARKET_PROTECTION

# Upstox product codes: D = delivery (our CNC), I = intraday (our MIS).
PRODUCT_CODES: dict[Product, str] = {Product.CNC: "D", Product.MIS: "I"}


@dataclass(frozen=True, slots=True)
class UpstoxConfig:
    """Everything the adapter needs. `api_url` serves reads and GTTs, `order_url` (the HFT host)
    serves place/modify/cancel order, as in the Upstox SDK."""

    access_token: str = field(repr=False)
    api_url: str = "https://api.upstox.com"
    order_url: str = "https://api-hft.upstox.com"
    connect_timeout: float = 3.0  # seconds
    read_timeout: float = 7.0  # seconds; a timed-out order is looked up by tag, never blindly resent
    product: Product = Product.CNC
    limit_offset_pct: float = 0.5  # GTT SELL limits sit this far below their triggers (market protection)
    algo_name: str | None = None  # X-Algo-Name header of every order request: the app's Algo Name in My Apps
    orders_per_second: float = UPSTOX_CAPABILITIES.orders_per_second  # per order API
    orders_per_minute: int = UPSTOX_CAPABILITIES.orders_per_minute
    market_protection: float = DEFAULT_MARKET_PROTECTION_PCT  # percent (-1: Upstox's own) on MARKET / SL-M orders

    def __post_init__(self) -> None:
        if not self.access_token or not self.access_token.strip():
            raise ConfigError(
                "UPSTOX_ACCESS_TOKEN is missing: set it in the environment or .env "
                "(or set AUTOTRADER_BROKER=upstox-sandbox to trade against the built-in Upstox sandbox)"
            )
        for name, attribute, example in (("UPSTOX_API_URL", "api_url", "https://api.upstox.com"),
                                         ("UPSTOX_ORDER_URL", "order_url", "https://api-hft.upstox.com")):
            url = check_http_url(name, getattr(self, attribute), example, sandbox="upstox-sandbox")
            object.__setattr__(self, attribute, url)
        if not 0 <= self.limit_offset_pct < 100:
            raise ConfigError(f"GTT limit offset must be in [0, 100) percent, got {self.limit_offset_pct}")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError(
                f"Upstox timeouts must be positive, got connect={self.connect_timeout} read={self.read_timeout}"
            )
        if not 0 < self.orders_per_second <= MAX_ORDERS_PER_SECOND or self.orders_per_minute < 1:
            raise ConfigError(
                f"Upstox order rates must be in (0, {MAX_ORDERS_PER_SECOND:g}] per second and >= 1 per minute, "
                f"got {self.orders_per_second}/s and {self.orders_per_minute}/min"
            )
        if not valid_market_protection(self.market_protection):
            raise ConfigError(
                f"Upstox accepts market_protection {AUTO_MARKET_PROTECTION:g} (automatic) or 0 to "
                f"{MAX_MARKET_PROTECTION:g} percent, got {self.market_protection}"
            )

    @classmethod
    def from_credentials(cls, credentials: Credentials, **settings: Any) -> UpstoxConfig:
        """The token and hosts from `credentials`, everything else from `settings` (field names)."""
        token = credentials.upstox_access_token
        return cls(
            access_token=token.get_secret_value() if token is not None else "",
            api_url=credentials.upstox_api_url,
            order_url=credentials.upstox_order_url,
            **settings,
        )

    @property
    def product_code(self) -> str:
        return PRODUCT_CODES[self.product]

    @property
    def capabilities(self) -> BrokerCapabilities:
        """`UPSTOX_CAPABILITIES` at this configuration's order rates."""
        return replace(UPSTOX_CAPABILITIES, orders_per_second=self.orders_per_second,
                       orders_per_minute=self.orders_per_minute)
