"""Upstox adapter configuration: hosts, token, timeouts and the broker's capabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.brokers.base import BrokerCapabilities, ConfigError, check_http_url
from engine.models import Product
from engine.settings import Credentials

# Upstox's standard limits are 50 requests/s and 500/min per user; order APIs share them.
UPSTOX_CAPABILITIES = BrokerCapabilities(
    gtt=True,
    bracket_orders=False,
    orders_per_second=50.0,
    orders_per_minute=500,
    max_tag_length=20,
)

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
    algo_name: str | None = None  # X-Algo-Name header, only for exchange-registered algos

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

    @classmethod
    def from_credentials(
        cls, credentials: Credentials, *, product: Product = Product.CNC, limit_offset_pct: float = 0.5
    ) -> UpstoxConfig:
        token = credentials.upstox_access_token
        return cls(
            access_token=token.get_secret_value() if token is not None else "",
            api_url=credentials.upstox_api_url,
            order_url=credentials.upstox_order_url,
            product=product,
            limit_offset_pct=limit_offset_pct,
        )

    @property
    def product_code(self) -> str:
        return PRODUCT_CODES[self.product]
