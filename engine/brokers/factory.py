"""Choosing the broker: `AUTOTRADER_BROKER` (settings.broker) = paper (default) | zerodha | upstox |
zerodha-sandbox | upstox-sandbox (the real adapters against the built-in loopback venue servers).

Adapters are imported lazily so that paper runs never load the broker SDKs.

A replayed or backtested day sends orders priced from the past: it may trade only with the paper
broker, a `*-sandbox` venue or a broker URL on a loopback host (`check_venue_allowed`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.brokers.base import Broker, ConfigError, check_http_url, is_loopback_url, shown_url
from engine.clock import Clock
from engine.models import Instrument, Product
from engine.settings import Credentials, Settings
from engine.sim import FillModel

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

BROKERS = ("paper", "zerodha", "upstox", "zerodha-sandbox", "upstox-sandbox")
SANDBOX_BROKERS = ("zerodha-sandbox", "upstox-sandbox")
# The real venues' hosts: (variable, Credentials field, default). Any other host is warned about.
VENUE_URLS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "zerodha": (("KITE_ROOT_URL", "kite_root_url", "https://api.kite.trade"),),
    "upstox": (("UPSTOX_API_URL", "upstox_api_url", "https://api.upstox.com"),
               ("UPSTOX_ORDER_URL", "upstox_order_url", "https://api-hft.upstox.com")),
}
SAFE_VENUES = (
    "Use AUTOTRADER_BROKER=paper, zerodha-sandbox or upstox-sandbox, or a broker URL on a loopback host "
    "(127.0.0.1, ::1, localhost)."
)


class VenueRefused(ConfigError):
    """The run may not trade with the configured venue (a replay against a real broker)."""


def venue_urls(settings: Settings, credentials: Credentials) -> dict[str, str]:
    """{variable: URL} of the configured real venue, each checked (https, or http to loopback); {}
    for the paper broker and the sandboxes."""
    sandbox = f"{settings.broker}-sandbox"
    return {
        variable: check_http_url(variable, getattr(credentials, field), default, sandbox=sandbox)
        for variable, field, default in VENUE_URLS.get(settings.broker, ())
    }


def describe_venue(settings: Settings, urls: dict[str, str]) -> str:
    """Which venue and host a run trades with, for its first log line (no secrets)."""
    name = settings.broker
    if name == "paper":
        return "paper broker (simulated)"
    if name in SANDBOX_BROKERS:
        venue = name.removesuffix("-sandbox")
        return f"{name}: the real {venue} adapter against the built-in loopback sandbox (simulated)"
    where = ", ".join(shown_url(url) for url in urls.values())
    kind = "loopback" if all(is_loopback_url(url) for url in urls.values()) else "live"
    return f"trading with {name} at {where} ({kind})"


def check_venue_allowed(settings: Settings, credentials: Credentials | None = None, *,
                        replay: bool | None = None) -> str:
    """The venue's description (see `describe_venue`); `VenueRefused` when `replay` (a replayed or
    backtested day; default: `feed.source` is "replay") would trade with a real broker: orders priced
    from the past must never reach one.
    Raises ConfigError for a bad broker URL (plain http to a remote host, the old "sandbox" value)."""
    if replay is None:
        replay = settings.feed.source == "replay"
    urls: dict[str, str] = {}
    if settings.broker in VENUE_URLS:
        if credentials is None:
            from engine.settings import load_credentials

            credentials = load_credentials()
        urls = venue_urls(settings, credentials)
    remote = [f"{variable}={shown_url(url)}" for variable, url in urls.items() if not is_loopback_url(url)]
    if replay and remote:
        raise VenueRefused(
            f"refusing to trade a replayed or backtested day with AUTOTRADER_BROKER={settings.broker} at "
            f"{', '.join(remote)}: it is not a loopback host, so it may be a real broker, and the orders would be "
            f"priced from past data. {SAFE_VENUES}"
        )
    return describe_venue(settings, urls)


def _warn_about_hosts(settings: Settings, credentials: Credentials) -> None:
    """A broker host other than the venue's own is named once, at broker creation."""
    for variable, field, default in VENUE_URLS.get(settings.broker, ()):
        url = getattr(credentials, field)
        if url.rstrip("/") != default:
            log.warning("%s points at %s, not the %s default %s", variable, shown_url(url), settings.broker, default)


def sandbox_state_path(database_url: str, venue: str = "kite") -> Path | None:
    """Where the embedded `venue` sandbox keeps its book: next to a SQLite database file (a fresh
    database comes with a fresh sandbox); in memory for other databases."""
    if not database_url.startswith("sqlite:///") or database_url.startswith("sqlite:///:memory:"):
        return None
    database = Path(database_url.removeprefix("sqlite:///"))
    return database.with_name(f"{database.stem}.{venue}-sandbox.json")


def make_broker(
    settings: Settings,
    credentials: Credentials | None = None,
    *,
    clock: Clock,
    instruments: Iterable[Instrument] = (),
    db: Engine | None = None,
    replay: bool | None = None,
) -> Broker:
    """The broker named by `settings.broker`. `instruments` maps our instrument keys to the
    venues' symbols (Kite needs tradingsymbols); `db` lets the paper broker restore its state from
    the journal on `connect()`. `zerodha-sandbox` and `upstox-sandbox` run the real adapter against
    an embedded venue-compatible loopback server fed by `on_tick` (stopped by `close()`).
    `replay` (default: `feed.source` is "replay") refuses a real broker (`check_venue_allowed`)
    before anything is sent. Logs the venue once."""
    name = settings.broker
    instruments = list(instruments)
    if credentials is None and name in VENUE_URLS:
        from engine.settings import load_credentials

        credentials = load_credentials()
    log.info("%s", check_venue_allowed(settings, credentials, replay=replay))
    if name == "paper":
        from engine.brokers.paper import PaperBroker

        return PaperBroker.from_settings(settings, clock, instruments=instruments, db=db)
    if name == "zerodha-sandbox":
        from engine.brokers.zerodha.sandbox import SandboxZerodhaBroker

        return SandboxZerodhaBroker.start(clock, instruments=instruments, product=Product(settings.execution.product),
                                          state_path=sandbox_state_path(settings.database_url),
                                          fill_model=FillModel.from_settings(settings.paper),
                                          market_protection=settings.execution.market_protection)
    if name == "upstox-sandbox":
        from engine.brokers.upstox.sandbox import SandboxUpstoxBroker

        return SandboxUpstoxBroker.start(clock, instruments=instruments, product=Product(settings.execution.product),
                                         limit_offset_pct=settings.execution.gtt_limit_offset_pct,
                                         state_path=sandbox_state_path(settings.database_url, "upstox"),
                                         fill_model=FillModel.from_settings(settings.paper),
                                         market_protection=settings.execution.market_protection)
    if name not in VENUE_URLS or credentials is None:  # credentials: loaded above for every real venue
        raise ConfigError(f"setting 'broker': value {name!r} is invalid: expected one of {', '.join(BROKERS)}")
    _warn_about_hosts(settings, credentials)
    if name == "zerodha":
        from engine.brokers.zerodha.execution import ZerodhaBroker

        return ZerodhaBroker.from_settings(settings, credentials, clock=clock, instruments=instruments)
    from engine.brokers.upstox import UpstoxBroker

    return UpstoxBroker.from_settings(settings, credentials, clock=clock, instruments=instruments)
