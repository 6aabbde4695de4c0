"""Venues are explicit and a replayed or backtested day never reaches a real broker (issue #10).

What was seen: `AUTOTRADER_BROKER=zerodha KITE_ROOT_URL=<a real Kite host> autotrader demo` sent BUY
LIMIT orders priced from 2024 to that host; `KITE_ROOT_URL=sandbox` silently swapped the real broker
for the built-in one, and `reconcile` treated an empty sandbox as the truth."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli import demo_cmd
from cli.main import app
from engine.backtest import run_backtest
from engine.brokers.base import ConfigError
from engine.brokers.factory import VenueRefused, check_venue_allowed, make_broker
from engine.brokers.paper import PaperBroker
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.clock import SteppedClock
from engine.models import IST
from engine.settings import Credentials, load_settings
from tests.security.netns import (  # noqa: F401 - clean_broker_environment: a fixture
    FakeKite,
    NetnsPair,
    clean_broker_environment,
    isolated_environment,
    unavailable_reason,
)

pytestmark = pytest.mark.usefixtures("clean_broker_environment")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REFUSED = "refusing to trade a replayed or backtested day"
REAL_KITE = Credentials(kite_root_url="https://api.kite.trade", kite_api_key="key", kite_access_token="token")


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2024, 6, 4, 9, 0, tzinfo=IST))


# ---- (a) a replayed day against a "production" Kite host on a non-loopback address ----------------

DEMO_ONE_DAY = [sys.executable, "-m", "cli.main", "demo", "--from", "2024-06-04", "--to", "2024-06-04"]
TRADING_DAY_FLOW = [
    sys.executable, "-c",
    "import asyncio\n"
    "from flows.trading_day import trading_day\n"
    "state = asyncio.run(trading_day(day='2024-06-04', replay=True, return_state=True))\n"
    "print(state.name, state.message)\n"
    "raise SystemExit(0 if state.is_completed() else 1)\n",
]


def _client_environment(tmp_path: Path, kite: FakeKite) -> dict[str, str]:
    """A process environment that would trade with the fake production host (its certificate
    trusted, credentials set), with its own database and Prefect home."""
    return isolated_environment(
        tmp_path,
        AUTOTRADER_BROKER="zerodha",
        KITE_ROOT_URL=kite.url,
        KITE_API_KEY="production-api-key",
        KITE_ACCESS_TOKEN="production-access-token",
        REQUESTS_CA_BUNDLE=str(kite.cert),
        AUTOTRADER_DATABASE_URL=f"sqlite:///{tmp_path / 'replayed.db'}",
    )


@pytest.mark.e2e
@pytest.mark.parametrize("command", [DEMO_ONE_DAY, TRADING_DAY_FLOW], ids=["autotrader-demo", "trading-day-flow"])
def test_a_replayed_day_sends_nothing_to_a_broker_on_a_non_loopback_host(tmp_path: Path, command: list[str]) -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with NetnsPair() as pair, pair.serve_fake_kite(tmp_path) as kite:
        result = subprocess.run(pair.exec_argv(command), env=_client_environment(tmp_path, kite), cwd=tmp_path,
                                capture_output=True, text=True, timeout=280)
        seen = kite.requests()
    output = result.stdout + result.stderr
    assert seen == [], f"the production host was contacted: {seen}"
    assert result.returncode != 0
    assert REFUSED in output, output[-3000:]
    assert f"KITE_ROOT_URL={kite.url}" in output
    assert "AUTOTRADER_BROKER=paper, zerodha-sandbox or upstox-sandbox" in output


# ---- the one rule, at every replay/backtest entry point -------------------------------------------


def test_check_venue_allowed_refuses_a_remote_broker_for_a_replay_only(clock: SteppedClock) -> None:
    zerodha = load_settings(broker="zerodha")
    with pytest.raises(VenueRefused, match=REFUSED):
        check_venue_allowed(zerodha, REAL_KITE, replay=True)
    live = check_venue_allowed(zerodha, REAL_KITE, replay=False)
    assert live == "trading with zerodha at https://api.kite.trade (live)"
    loopback = Credentials(kite_root_url="http://127.0.0.1:9", kite_api_key="k", kite_access_token="t")
    replayed = check_venue_allowed(zerodha, loopback, replay=True)
    assert replayed == "trading with zerodha at http://127.0.0.1:9 (loopback)"
    assert check_venue_allowed(load_settings(broker="paper"), replay=True) == "paper broker (simulated)"
    assert check_venue_allowed(load_settings(broker="zerodha-sandbox"), replay=True).startswith("zerodha-sandbox:")
    real_upstox = Credentials(upstox_access_token="t", upstox_order_url="https://10.1.2.3")
    with pytest.raises(VenueRefused, match=r"UPSTOX_API_URL=https://api.upstox.com, UPSTOX_ORDER_URL=https://10.1.2.3"):
        check_venue_allowed(load_settings(broker="upstox"), real_upstox, replay=True)


def test_make_broker_refuses_a_real_broker_when_the_feed_is_a_replay(clock: SteppedClock) -> None:
    replayed = load_settings(broker="zerodha")  # feed.source defaults to "replay"
    assert replayed.feed.source == "replay"
    with pytest.raises(VenueRefused, match=REFUSED):
        make_broker(replayed, REAL_KITE, clock=clock)
    with pytest.raises(VenueRefused, match=REFUSED):
        make_broker(load_settings(broker="zerodha", feed={"source": "upstox"}), REAL_KITE, clock=clock, replay=True)
    live = make_broker(load_settings(broker="zerodha", feed={"source": "upstox"}), REAL_KITE, clock=clock)
    assert isinstance(live, ZerodhaBroker)  # created, nothing sent: connect() was not called


def test_every_run_names_its_venue_once_without_secrets(clock: SteppedClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engine.brokers.factory")
    make_broker(load_settings(broker="zerodha"), REAL_KITE, clock=clock, replay=False)
    assert [r.getMessage() for r in caplog.records] == ["trading with zerodha at https://api.kite.trade (live)"]
    caplog.clear()
    assert isinstance(make_broker(load_settings(broker="paper"), clock=clock), PaperBroker)
    assert [r.getMessage() for r in caplog.records] == ["paper broker (simulated)"]


async def test_a_backtest_refuses_a_real_broker(monkeypatch: pytest.MonkeyPatch, shipped_data_dir: Path) -> None:
    monkeypatch.setenv("KITE_API_KEY", "key")
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "token")
    settings = load_settings(broker="zerodha", data_dir=shipped_data_dir, universe={"max_instruments": 3})
    with pytest.raises(VenueRefused, match=REFUSED):
        await run_backtest(settings, date(2024, 6, 3), date(2024, 6, 4))


def test_autotrader_backtest_refuses_a_real_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITE_API_KEY", "key")
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "token")
    monkeypatch.setenv("AUTOTRADER_BROKER", "zerodha")
    result = CliRunner().invoke(app, ["backtest", "--from", "2024-06-03", "--to", "2024-06-04", "--symbols", "TCS"])
    assert result.exit_code == 2
    assert REFUSED in " ".join(result.output.split())


def test_the_demo_refuses_a_real_broker_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_cmd, "prefect_environment", dict)  # keep this process's Prefect settings
    monkeypatch.setenv("AUTOTRADER_BROKER", "upstox")
    monkeypatch.setenv("UPSTOX_ACCESS_TOKEN", "token")
    result = CliRunner().invoke(app, ["demo", "--from", "2024-06-04", "--to", "2024-06-04"])
    assert result.exit_code == 2
    assert REFUSED in " ".join(result.output.split())
    assert "▶ trading day" not in result.output


def test_the_demo_deployment_forces_the_paper_broker_and_no_flow_takes_a_database_url() -> None:
    from flows.live_session import live_session
    from flows.post_close import post_close
    from flows.pre_open import pre_open
    from flows.trading_day import trading_day

    deployments = {d["name"]: d for d in yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]}
    demo = deployments["demo"]
    assert demo["parameters"]["replay"] is True
    assert demo["work_pool"]["job_variables"]["env"]["AUTOTRADER_BROKER"] == "paper"
    assert demo["work_pool"]["job_variables"]["env"]["AUTOTRADER_FEED__SOURCE"] == "replay"
    for deployment in deployments.values():
        assert "database_url" not in (deployment.get("parameters") or {}), deployment["name"]
    for flow in (pre_open, live_session, post_close, trading_day):
        assert "database_url" not in inspect.signature(flow.fn).parameters, flow.name


# ---- (b) the magic "sandbox" URL value is gone ----------------------------------------------------


@pytest.mark.parametrize(
    ("broker", "credentials", "variable", "use"),
    [
        ("zerodha", Credentials(kite_root_url="sandbox", kite_api_key="k", kite_access_token="t"), "KITE_ROOT_URL",
         "zerodha-sandbox"),
        ("upstox", Credentials(upstox_api_url="sandbox", upstox_access_token="t"), "UPSTOX_API_URL", "upstox-sandbox"),
    ],
)
@pytest.mark.parametrize("replay", [True, False])
def test_the_magic_sandbox_url_is_refused_and_names_the_sandbox_venue(
    clock: SteppedClock, broker: str, credentials: Credentials, variable: str, use: str, replay: bool
) -> None:
    with pytest.raises(ConfigError, match=f"{variable}=sandbox is no longer supported: set AUTOTRADER_BROKER={use}"):
        make_broker(load_settings(broker=broker), credentials, clock=clock, replay=replay)


def test_reconcile_with_the_magic_sandbox_url_fails_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("AUTOTRADER_BROKER", "zerodha")
    monkeypatch.setenv("KITE_ROOT_URL", "sandbox")
    result = CliRunner().invoke(app, ["reconcile", "--json"])
    assert result.exit_code == 2
    assert "KITE_ROOT_URL=sandbox is no longer supported" in " ".join(result.output.split())


# ---- (d) reconcile never takes an empty embedded sandbox for the truth ----------------------------


@pytest.mark.parametrize("sandbox", ["zerodha-sandbox", "upstox-sandbox"])
def test_reconcile_refuses_a_sandbox_venue(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: str) -> None:
    database = tmp_path / "trading.db"
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("AUTOTRADER_BROKER", sandbox)
    result = CliRunner().invoke(app, ["reconcile", "--json"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"reconcile refuses AUTOTRADER_BROKER={sandbox}" in message
    assert "not the truth" in message
    assert not database.exists()  # refused before the database was even opened
