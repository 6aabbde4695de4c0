"""Settings: TOML defaults, overrides (user TOML, .env, environment), validation messages, .env.example."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from engine.settings import Settings, SettingsError, load_credentials, load_settings
from tests.conftest import PROJECT_ROOT


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in an empty directory (no stray .env) with no AUTOTRADER_/broker variables set."""
    import os

    for name in list(os.environ):
        if name.startswith(("AUTOTRADER_", "KITE_", "UPSTOX_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def test_default_toml_loads() -> None:
    settings = load_settings()
    assert settings.capital == 1_000_000.0
    assert settings.broker == "paper"
    assert settings.entry_windows == ["15:10-15:25"]
    assert settings.risk.risk_per_trade_pct == 1.0
    assert settings.universe.min_market_cap_cr == 20_000.0
    assert settings.calendar_file is None


def test_environment_overrides_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_RISK__RISK_PER_TRADE_PCT", "0.5")
    monkeypatch.setenv("AUTOTRADER_BROKER", "zerodha")
    monkeypatch.setenv("AUTOTRADER_ENTRY_WINDOWS", '["09:30-10:00", "15:00-15:20"]')
    settings = load_settings()
    assert settings.risk.risk_per_trade_pct == 0.5
    assert settings.broker == "zerodha"
    assert settings.entry_windows == ["09:30-10:00", "15:00-15:20"]


def test_user_toml_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "live.toml"
    user.write_text("capital = 250000.0\n[risk]\nmax_open_positions = 3\n")
    monkeypatch.setenv("AUTOTRADER_CONFIG", str(user))
    monkeypatch.setenv("AUTOTRADER_RISK__MAX_OPEN_POSITIONS", "4")
    settings = load_settings()
    assert settings.capital == 250_000.0
    assert settings.risk.max_open_positions == 4


def test_user_toml_section_is_merged_key_by_key_over_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "live.toml"
    user.write_text("[strategy.validator]\nmin_price = 50.0\n")
    monkeypatch.setenv("AUTOTRADER_CONFIG", str(user))
    validator = load_settings().strategy.validator
    assert validator.min_price == 50.0
    assert validator.conditions == ["1d close > sma_200"]  # from config/default.toml, not dropped


def test_dotenv_with_credentials_and_other_tools_variables_loads(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "KITE_API_KEY=kite-key-123\nPREFECT_API_URL=http://127.0.0.1:4200/api\n"
        "AUTOTRADER_ALERT_WEBHOOK_URL=http://127.0.0.1:9/hook\nAUTOTRADER_CAPITAL=500000\n"
    )
    assert load_settings().capital == 500_000.0
    assert load_credentials().secret_values() == ["kite-key-123"]


def test_misspelt_setting_in_dotenv_fails(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AUTOTRADER_CAPITL=5\n")
    with pytest.raises(SettingsError, match=r"AUTOTRADER_CAPITL \(\.env\): did you mean AUTOTRADER_CAPITAL\?"):
        load_settings()


def test_invalid_value_names_key_value_and_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_RISK__RISK_PER_TRADE_PCT", "25")
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "risk.risk_per_trade_pct" in message
    assert "'25'" in message
    assert "less than or equal to 10" in message


def test_invalid_choice_lists_what_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_BROKER", "robinhood")
    allowed = "'paper', 'zerodha', 'upstox', 'zerodha-sandbox' or 'upstox-sandbox'"
    with pytest.raises(SettingsError, match=rf"'broker'.*'robinhood'.*{allowed}"):
        load_settings()


def test_unparsable_list_from_environment_names_key_value_and_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_ENTRY_WINDOWS", "15:10-15:25")
    with pytest.raises(SettingsError, match=r"'entry_windows'.*'15:10-15:25'.*JSON"):
        load_settings()


def test_missing_user_config_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("AUTOTRADER_CONFIG", str(missing))
    with pytest.raises(SettingsError, match=r"AUTOTRADER_CONFIG.*nope\.toml.*does not exist"):
        load_settings()


def test_malformed_user_config_file_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("capital = [\n")
    monkeypatch.setenv("AUTOTRADER_CONFIG", str(broken))
    with pytest.raises(SettingsError, match=r"broken\.toml.*not valid TOML"):
        load_settings()


@pytest.mark.parametrize("window", ["15:25-15:10", "9:30-10:00", "15:10-25:00", "15:10"])
def test_bad_entry_window_is_rejected(window: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(repr(window))):
        load_settings(entry_windows=[window])


def test_credential_defaults() -> None:
    credentials = load_credentials()
    assert credentials.kite_root_url == "https://api.kite.trade"
    assert credentials.upstox_api_url == "https://api.upstox.com"
    assert credentials.upstox_order_url == "https://api-hft.upstox.com"
    assert credentials.secret_values() == []


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(_env_names(annotation, f"{prefix}{name.upper()}__"))
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_env_example_documents_every_variable() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    required = set(_env_names(Settings, "AUTOTRADER_")) | {
        "AUTOTRADER_CONFIG",
        "AUTOTRADER_ALERT_WEBHOOK_URL",
        "KITE_API_KEY",
        "KITE_ACCESS_TOKEN",
        "KITE_ROOT_URL",
        "UPSTOX_ACCESS_TOKEN",
        "UPSTOX_API_URL",
        "UPSTOX_ORDER_URL",
        "PREFECT_API_URL",
    }
    assert sorted(required - documented) == []
