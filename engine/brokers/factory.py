"""Choosing the broker: `AUTOTRADER_BROKER` (settings.broker) = paper (default) | zerodha | upstox.

Adapters are imported lazily so that paper runs never load the broker SDKs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.brokers.base import SANDBOX_URL, Broker, ConfigError
from engine.clock import Clock
from engine.models import Instrument, Product
from engine.settings import Credentials, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

BROKERS = ("paper", "zerodha", "upstox")


def sandbox_state_path(database_url: str) -> Path | None:
    """Where the embedded Kite sandbox keeps its book: next to a SQLite database file (a fresh
    database comes with a fresh sandbox); in memory for other databases."""
    if not database_url.startswith("sqlite:///") or database_url.startswith("sqlite:///:memory:"):
        return None
    database = Path(database_url.removeprefix("sqlite:///"))
    return database.with_name(f"{database.stem}.kite-sandbox.json")


def make_broker(
    settings: Settings,
    credentials: Credentials | None = None,
    *,
    clock: Clock,
    instruments: Iterable[Instrument] = (),
    db: Engine | None = None,
) -> Broker:
    """The broker named by `settings.broker`. `instruments` maps our instrument keys to the
    venues' symbols (Kite needs tradingsymbols); `db` lets the paper broker restore its state from
    the journal on `connect()`. With `KITE_ROOT_URL=sandbox` (zerodha) or `UPSTOX_API_URL=sandbox`
    (upstox), the real adapter runs against an embedded venue-compatible server fed by `on_tick`
    (stopped by `close()`)."""
    name = settings.broker
    instruments = list(instruments)
    if name == "paper":
        from engine.brokers.paper import PaperBroker

        return PaperBroker.from_settings(settings, clock, instruments=instruments, db=db)
    if credentials is None:
        from engine.settings import load_credentials

        credentials = load_credentials()
    if name == "zerodha" and credentials.kite_root_url == SANDBOX_URL:
        from engine.brokers.zerodha.sandbox import SandboxZerodhaBroker

        return SandboxZerodhaBroker.start(clock, instruments=instruments, product=Product(settings.execution.product),
                                          state_path=sandbox_state_path(settings.database_url))
    if name == "zerodha":
        from engine.brokers.zerodha.execution import ZerodhaBroker

        return ZerodhaBroker.from_settings(settings, credentials, clock=clock, instruments=instruments)
    if name == "upstox" and credentials.upstox_api_url == SANDBOX_URL:
        from engine.brokers.upstox.sandbox import SandboxUpstoxBroker

        return SandboxUpstoxBroker.start(clock, instruments=instruments, product=Product(settings.execution.product),
                                         limit_offset_pct=settings.execution.gtt_limit_offset_pct)
    if name == "upstox":
        from engine.brokers.upstox import UpstoxBroker

        return UpstoxBroker.from_settings(settings, credentials, clock=clock, instruments=instruments)
    raise ConfigError(f"setting 'broker': value {name!r} is invalid: expected one of {', '.join(BROKERS)}")
