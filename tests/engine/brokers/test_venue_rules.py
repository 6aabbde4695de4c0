"""MIS against the brokers' intraday square-off: refused at settings time with the default window."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.brokers.venue_rules import mis_window_problem, venue_of
from engine.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("AUTOTRADER_", "KITE_", "UPSTOX_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def test_mis_with_the_default_window_is_refused_naming_window_and_square_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_EXECUTION__PRODUCT", "MIS")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert "entry window 15:10-15:25" in message and "square-off cut-off 15:20" in message
    assert "use product CNC" in message


def test_mis_within_the_cut_off_is_accepted_and_the_venue_decides_the_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_EXECUTION__PRODUCT", "MIS")
    monkeypatch.setenv("AUTOTRADER_ENTRY_WINDOWS", '["14:45-15:00", "15:05-15:15"]')
    assert load_settings().execution.product == "MIS"  # zerodha's 15:20 (paper is ruled as zerodha)
    monkeypatch.setenv("AUTOTRADER_BROKER", "upstox-sandbox")
    with pytest.raises(SettingsError, match=r"entry window 15:05-15:15 ends after .* 15:12"):
        load_settings()


def test_cnc_keeps_the_default_window() -> None:
    assert load_settings().execution.product == "CNC"
    assert mis_window_problem("zerodha", ["15:10-15:20"]) is None


@pytest.mark.parametrize(("broker", "venue"), [("paper", "zerodha"), ("zerodha", "zerodha"),
                                                ("upstox-sandbox", "upstox"), ("upstox", "upstox")])
def test_venue_of_each_broker_setting(broker: str, venue: str) -> None:
    assert venue_of(broker) == venue
