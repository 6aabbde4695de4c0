"""Settings: `config/default.toml`, then a user TOML (`AUTOTRADER_CONFIG`), then `.env` and
environment variables (prefix `AUTOTRADER_`, nested sections with `__`, e.g.
`AUTOTRADER_RISK__RISK_PER_TRADE_PCT=0.5`). Broker credentials have their own unprefixed names
(`KITE_API_KEY`, `UPSTOX_ACCESS_TOKEN`, …). An invalid value fails at start with a message naming
the key, the value and what is allowed."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceParseError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"
_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")


class SettingsError(ValueError):
    """A setting is invalid; the message names the key, the value and what is allowed."""


class RiskSettings(BaseModel):
    risk_per_trade_pct: float = Field(1.0, gt=0, le=10)
    daily_risk_cap_pct: float = Field(3.0, gt=0, le=50)
    max_open_positions: int = Field(5, ge=1, le=500)
    max_daily_loss_pct: float = Field(2.0, gt=0, le=100)
    flatten_on_kill: bool = False
    stop_method: Literal["swing", "atr"] = "swing"
    swing_lookback: int = Field(10, ge=2, le=250)
    atr_period: int = Field(14, ge=2, le=250)
    atr_multiple: float = Field(2.0, gt=0, le=20)
    min_stop_atr: float = Field(0.5, ge=0, le=20)  # the stop is at least this many ATRs below the entry
    reward_risk: float = Field(2.0, gt=0, le=20)
    volatility_cap_atr_pct: float | None = Field(None, gt=0, le=100)


class UniverseSettings(BaseModel):
    min_market_cap_cr: float = Field(20_000.0, ge=0)
    max_instruments: int = Field(250, ge=1, le=5000)
    require_complete_history: bool = True


class FeedSettings(BaseModel):
    source: Literal["replay", "upstox"] = "replay"
    mode: Literal["ltpc", "full", "full_d30"] = "full"
    replay_speed: float = Field(100.0, gt=0)
    watchdog_seconds: float = Field(10.0, gt=0)
    reconnect_max_seconds: float = Field(30.0, gt=0)


class PaperSettings(BaseModel):
    slippage_bps: float = Field(5.0, ge=0, le=1000)
    partial_fill_ratio: float = Field(1.0, gt=0, le=1)


class ExecutionSettings(BaseModel):
    product: Literal["CNC", "MIS"] = "CNC"
    gtt_limit_offset_pct: float = Field(0.5, ge=0, le=10)
    entry_limit_offset_pct: float = Field(0.5, ge=0, le=10)  # entry LIMIT price above the setup's entry
    reconcile_interval_seconds: float = Field(60.0, gt=0)


class ChargesSettings(BaseModel):
    """Indian equity delivery charges (rates as fractions of turnover unless noted)."""

    brokerage_per_order: float = Field(0.0, ge=0)  # rupees; Zerodha delivery is free
    brokerage_pct: float = Field(0.0, ge=0)
    brokerage_cap: float = Field(20.0, ge=0)
    stt_buy: float = Field(0.001, ge=0)
    stt_sell: float = Field(0.001, ge=0)
    exchange_txn: float = Field(0.0000297, ge=0)
    sebi_per_crore: float = Field(10.0, ge=0)
    stamp_duty_buy: float = Field(0.00015, ge=0)
    gst: float = Field(0.18, ge=0)


class ValidatorSettings(BaseModel):
    """Rules every setup must pass before it may be executed (see engine/strategy/validator.py)."""

    min_price: float = Field(20.0, ge=0)
    max_price: float | None = Field(None, gt=0)
    min_avg_volume: float = Field(0.0, ge=0)  # shares, daily avg_volume_<volume_period>
    min_volume_ratio: float = Field(0.0, ge=0)  # today's volume / average volume
    volume_period: int = Field(20, ge=1, le=250)
    history_complete: bool = True
    min_reward_risk: float = Field(1.0, ge=0)
    conditions: list[str] = Field(default_factory=list)  # e.g. "1d close > sma_200"

    @field_validator("conditions")
    @classmethod
    def _check_conditions(cls, value: list[str]) -> list[str]:
        from engine.strategy.validator import IndicatorCondition

        for text in value:
            IndicatorCondition.parse(text)
        return value


class StrategySettings(BaseModel):
    name: str = "trend_pullback"
    params: dict[str, Any] = Field(default_factory=dict)
    validator: ValidatorSettings = Field(default_factory=ValidatorSettings)  # type: ignore[arg-type]


class Settings(BaseSettings):
    """Every tunable of autotrader. See `config/default.toml` for documentation of each key."""

    model_config = SettingsConfigDict(
        env_prefix="AUTOTRADER_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
    )

    capital: float = Field(1_000_000.0, gt=0)
    entry_windows: list[str] = Field(default_factory=lambda: ["15:10-15:25"])
    broker: Literal["paper", "zerodha", "upstox"] = "paper"
    database_url: str = "sqlite:///var/autotrader.db"
    data_dir: Path = PROJECT_ROOT / "data"
    calendar_file: Path | None = None  # merged over the shipped config/nse_calendar.toml
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    risk: RiskSettings = Field(default_factory=RiskSettings)  # type: ignore[arg-type]
    universe: UniverseSettings = Field(default_factory=UniverseSettings)  # type: ignore[arg-type]
    feed: FeedSettings = Field(default_factory=FeedSettings)  # type: ignore[arg-type]
    paper: PaperSettings = Field(default_factory=PaperSettings)  # type: ignore[arg-type]
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)  # type: ignore[arg-type]
    charges: ChargesSettings = Field(default_factory=ChargesSettings)  # type: ignore[arg-type]
    strategy: StrategySettings = Field(default_factory=StrategySettings)

    @field_validator("entry_windows")
    @classmethod
    def _check_windows(cls, value: list[str]) -> list[str]:
        for window in value:
            if not _WINDOW.match(window) or window[:5] >= window[6:]:
                raise ValueError(f"entry window {window!r} must be 'HH:MM-HH:MM' (IST) with start < end")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = [DEFAULT_CONFIG]
        user_file = os.environ.get("AUTOTRADER_CONFIG")
        if user_file:
            if not Path(user_file).is_file():  # pydantic-settings would skip it silently
                raise SettingsError(f"AUTOTRADER_CONFIG: value {user_file!r} is invalid: the file does not exist")
            files.append(Path(user_file))
        return (
            init_settings,
            env_settings,
            _SettingsKeysOnly(settings_cls, dotenv_settings),
            _ReportingTomlSource(settings_cls, toml_file=files),
        )


# AUTOTRADER_-prefixed variables read by other parts, not by Settings (they may sit in `.env`).
EXTERNAL_PREFIXED_VARIABLES = frozenset({"autotrader_config", "autotrader_alert_webhook_url"})


class _ReportingTomlSource(TomlConfigSettingsSource):
    """Names the file when one is not valid TOML."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            return super()._read_file(file_path)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {file_path}: not valid TOML: {exc}") from None


class _SettingsKeysOnly(PydanticBaseSettingsSource):
    """`.env` also holds credentials and other tools' variables (KITE_*, PREFECT_API_URL): pass on only
    Settings keys and unknown AUTOTRADER_* keys (so a misspelt setting still fails loudly)."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in self.inner().items()
            if key in self.settings_cls.model_fields
            or (key.startswith("autotrader_") and key not in EXTERNAL_PREFIXED_VARIABLES)
        }


class Credentials(BaseSettings):
    """Broker credentials, from the environment, `.env`, or Prefect Secret blocks (loaded by flows)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kite_api_key: SecretStr | None = None
    kite_access_token: SecretStr | None = None
    kite_root_url: str = "https://api.kite.trade"
    upstox_access_token: SecretStr | None = None
    upstox_api_url: str = "https://api.upstox.com"
    upstox_order_url: str = "https://api-hft.upstox.com"

    def secret_values(self) -> list[str]:
        values = (self.kite_api_key, self.kite_access_token, self.upstox_access_token)
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def _describe(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    return f"setting {key!r}: value {value!r} is invalid: {error['msg']}"


_SOURCE_FIELD = re.compile(r'field "(\w+)"')


def _describe_unparsable(exc: SourceParseError) -> str:
    """A list/table setting from the environment or `.env` that is not JSON."""
    match = _SOURCE_FIELD.search(str(exc))
    key = match[1] if match else "?"
    variable = f"AUTOTRADER_{key.upper()}"
    value = next((v for k, v in os.environ.items() if k.upper() == variable), None)
    shown = repr(value) if value is not None else "(from .env)"
    return (
        f"setting {key!r} ({variable}): value {shown} is invalid: "
        'a list or table setting must be JSON, e.g. ["15:10-15:25"] or {"key": 1}'
    )


def load_settings(**overrides: Any) -> Settings:
    """Load and validate settings; raise `SettingsError` naming each bad key, value and rule."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
    except SourceParseError as exc:
        raise SettingsError(_describe_unparsable(exc)) from None


def load_credentials() -> Credentials:
    return Credentials()
