"""Broker URLs carry the access token: https:// only, plain http:// only to a loopback host, and a
host other than the venue's own is named in a warning (issue #10: a `.env` in the working directory
pointed the token at a plain-http server, 38 times in one run)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pytest

from engine.brokers.base import ConfigError, check_http_url
from engine.brokers.factory import make_broker
from engine.brokers.upstox.config import UpstoxConfig
from engine.brokers.zerodha.config import ZerodhaConfig
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.clock import SteppedClock
from engine.models import IST
from engine.settings import Credentials, load_credentials, load_settings
from tests.security.netns import clean_broker_environment  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_broker_environment")

LIVE_ZERODHA = {"broker": "zerodha", "feed": {"source": "upstox"}}  # not a replay: only transport rules apply


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(datetime(2024, 6, 4, 9, 0, tzinfo=IST))


@pytest.mark.parametrize("url", ["http://10.0.0.5", "http://api.kite.trade", "http://192.168.1.20:8000/"])
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"KITE_ROOT_URL must use https:// .*unencrypted"):
        ZerodhaConfig(api_key="k", access_token="t", root_url=url)


@pytest.mark.parametrize("variable", ["api_url", "order_url"])
def test_plain_http_is_refused_for_both_upstox_hosts(variable: str) -> None:
    with pytest.raises(ConfigError, match=f"UPSTOX_{variable.upper()} must use https://"):
        UpstoxConfig(access_token="t", **{variable: "http://api.upstox.com"})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000/", "http://[::1]:8000",
                                 "http://127.5.6.7", "https://api.kite.trade"])
def test_https_or_a_loopback_host_is_accepted(url: str) -> None:
    assert ZerodhaConfig(api_key="k", access_token="t", root_url=url).root_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["ftp://api.kite.trade", "api.kite.trade", "https://", "https://host:notaport"])
def test_what_is_not_a_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="KITE_ROOT_URL must be an https:// URL"):
        check_http_url("KITE_ROOT_URL", url, "https://api.kite.trade", sandbox="zerodha-sandbox")


def test_a_non_default_host_is_named_in_a_warning_and_the_default_is_not(
    clock: SteppedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.brokers.factory")
    loopback = Credentials(kite_root_url="http://127.0.0.1:8000/", kite_api_key="k", kite_access_token="secret-token")
    broker = make_broker(load_settings(**LIVE_ZERODHA), loopback, clock=clock)
    assert isinstance(broker, ZerodhaBroker)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["KITE_ROOT_URL points at http://127.0.0.1:8000, not the zerodha default https://api.kite.trade"]
    assert all("secret-token" not in r.getMessage() for r in caplog.records)
    caplog.clear()
    default = Credentials(kite_api_key="k", kite_access_token="t")
    make_broker(load_settings(**LIVE_ZERODHA), default, clock=clock)
    assert [r for r in caplog.records if r.levelno == logging.WARNING] == []


def test_a_url_with_a_password_is_never_shown(clock: SteppedClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="engine.brokers.factory")
    credentials = Credentials(kite_root_url="https://user:hunter2@kite.example.com", kite_api_key="k",
                              kite_access_token="t")
    make_broker(load_settings(**LIVE_ZERODHA), credentials, clock=clock)
    assert "kite.example.com" in caplog.text and "hunter2" not in caplog.text
    with pytest.raises(ConfigError) as refused:
        check_http_url("KITE_ROOT_URL", "http://user:hunter2@10.0.0.5", "https://api.kite.trade",
                       sandbox="zerodha-sandbox")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ConfigError) as invalid:
        check_http_url("KITE_ROOT_URL", "ftp://user:hunter2@kite.example.com", "https://api.kite.trade",
                       sandbox="zerodha-sandbox")
    assert "hunter2" not in str(invalid.value)


def test_a_dotenv_in_the_working_directory_cannot_send_the_token_over_plain_http(
    clock: SteppedClock, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("KITE_API_KEY=k\nKITE_ACCESS_TOKEN=t\nKITE_ROOT_URL=http://203.0.113.7/\n")
    credentials = load_credentials()  # the fixture made tmp_path the working directory
    assert credentials.kite_root_url == "http://203.0.113.7/"
    with pytest.raises(ConfigError, match=r"KITE_ROOT_URL must use https://.*203\.0\.113\.7"):
        make_broker(load_settings(**LIVE_ZERODHA), clock=clock)
