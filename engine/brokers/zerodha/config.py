"""Zerodha adapter configuration: credentials, root URL, timeouts and capabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.brokers.base import BrokerCapabilities, ConfigError, check_http_url
from engine.models import Product
from engine.settings import DEFAULT_MARKET_PROTECTION_PCT, Credentials

# Kite Connect: 10 order requests per second, 400 per minute (per user).
KITE_CAPABILITIES = BrokerCapabilities(
    gtt=True,
    bracket_orders=False,
    orders_per_second=10.0,
    orders_per_minute=400,
    max_tag_length=20,
)
EXCHANGE = "NSE"
VARIETY = "regular"


@dataclass(frozen=True, slots=True)
class ZerodhaConfig:
    api_key: str = field(repr=False)
    access_token: str = field(repr=False)
    root_url: str = "https://api.kite.trade"
    timeout: float = 7.0  # seconds; a timed-out order is looked up by tag, never blindly resent
    product: Product = Product.CNC
    market_protection: float = DEFAULT_MARKET_PROTECTION_PCT  # percent, sent with every MARKET / SL-M order

    def __post_init__(self) -> None:
        if not self.api_key or not self.access_token:
            raise ConfigError("KITE_API_KEY and KITE_ACCESS_TOKEN must be set (environment or .env)")
        object.__setattr__(self, "root_url", check_http_url("KITE_ROOT_URL", self.root_url, "https://api.kite.trade",
                                                                  sandbox="zerodha-sandbox"))
        if self.timeout <= 0:
            raise ConfigError(f"Kite timeout must be positive, got {self.timeout}")
        if not 0 < self.market_protection <= 100:
            raise ConfigError(f"Kite market_protection must be a percent above 0 and at most 100, got "
                              f"{self.market_protection}")

    @classmethod
    def from_credentials(
        cls, credentials: Credentials, *, product: Product = Product.CNC, timeout: float = 7.0,
        market_protection: float = DEFAULT_MARKET_PROTECTION_PCT,
    ) -> ZerodhaConfig:
        api_key, token = credentials.kite_api_key, credentials.kite_access_token
        return cls(
            api_key=api_key.get_secret_value() if api_key is not None else "",
            access_token=token.get_secret_value() if token is not None else "",
            root_url=credentials.kite_root_url,
            timeout=timeout,
            product=product,
            market_protection=market_protection,
        )
