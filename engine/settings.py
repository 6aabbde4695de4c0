"""Settings: `config/default.toml`, then a user TOML (`AUTOTRADER_CONFIG`), then `.env` and
environment variables (prefix `AUTOTRADER_`, nested sections with `__`, e.g.
`AUTOTRADER_RISK__RISK_PER_TRADE_PCT=0.5`). Broker credentials have their own unprefixed names
(`KITE_API_KEY`, `UPSTOX_ACCESS_TOKEN`, …).

Strict: an unknown key in a TOML file or an unknown `AUTOTRADER_*` variable, an invalid or
non-finite value and a file that is not UTF-8 all fail at start with a message naming the key (and
where it came from), what is allowed and the nearest valid key. No secret value is ever shown: a
credential-like key is named without its value, and the database password is masked everywhere
(`redacted_url`)."""

from __future__ import annotations

import difflib
import io
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self, get_origin

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import CoreSchema, core_schema
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceParseError

from engine.resources import config_file, shipped_data_dir
from engine.secrets import redacted_url, register_secret, register_secrets, register_url_password

DEFAULT_CONFIG = config_file("default.toml")
DOTENV_FILE = Path(".env")  # in the working directory
ENV_PREFIX = "AUTOTRADER_"
_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
_SQLALCHEMY_URL = re.compile(r"^[A-Za-z][\w+]*://")
# A key whose name contains one of these holds a credential: errors name it but never show its value.
_SECRET_NAME_PARTS = ("kite_", "upstox_", "token", "secret", "password", "passwd", "key", "credential", "webhook")


class SettingsError(ValueError):
    """A setting is invalid; the message names the key, the value and what is allowed."""


class _MaskedUrl(str):
    """A URL holding a credential: the value (and `str()`) is the usable URL, while `repr()` and every
    settings dump (`model_dump`, `model_dump_json`) show only `masked()`."""

    __slots__ = ()

    def masked(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return repr(self.masked())

    @classmethod
    def parse(cls, value: str) -> Self:
        raise NotImplementedError

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls.parse,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda url: cls(url).masked()),
        )


class DatabaseUrl(_MaskedUrl):
    """A SQLAlchemy URL, its password masked."""

    __slots__ = ()

    def masked(self) -> str:
        return redacted_url(self)

    @classmethod
    def parse(cls, value: str) -> Self:
        if not _SQLALCHEMY_URL.match(value):
            raise ValueError("must be a SQLAlchemy URL 'dialect[+driver]://...', e.g. 'sqlite:///var/autotrader.db'")
        return cls(value)


class WebhookUrl(_MaskedUrl):
    """A webhook URL, a credential itself (Slack, Discord and Teams put the secret in the path): masked
    down to its scheme and host."""

    __slots__ = ()

    def masked(self) -> str:
        scheme, separator, rest = self.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        return f"{scheme}{separator}{host}/***" if self else ""

    @classmethod
    def parse(cls, value: str) -> Self:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL, or empty for none")
        return cls(value)


class _Section(BaseModel):
    """A settings section: unknown keys and non-finite numbers (inf, nan) are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RiskSettings(_Section):
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


class UniverseSettings(_Section):
    min_market_cap_cr: float = Field(20_000.0, ge=0)
    max_instruments: int = Field(250, ge=1, le=5000)
    require_complete_history: bool = True


class FeedSettings(_Section):
    source: Literal["replay", "upstox"] = "replay"
    mode: Literal["ltpc", "full", "full_d30"] = "full"
    replay_speed: float = Field(100.0, gt=0)
    watchdog_seconds: float = Field(10.0, gt=0)
    reconnect_max_seconds: float = Field(30.0, gt=0)
    # A replayed day only: feed faults injected per day (`autotrader demo --chaos N`), at moments seeded by the seed.
    replay_chaos: int = Field(0, ge=0, le=1000)
    replay_chaos_seed: int = 0


class PaperSettings(_Section):
    slippage_bps: float = Field(5.0, ge=0, le=1000)
    partial_fill_ratio: float = Field(1.0, gt=0, le=1)


DEFAULT_MARKET_PROTECTION_PCT = 2.0


class ExecutionSettings(_Section):
    product: Literal["CNC", "MIS"] = "CNC"
    gtt_limit_offset_pct: float = Field(0.5, ge=0, le=10)
    entry_limit_offset_pct: float = Field(0.5, ge=0, le=10)  # entry LIMIT price above the setup's entry
    reconcile_interval_seconds: float = Field(60.0, gt=0)
    # percent around the last price a MARKET / SL-M order may fill (Kite: > 0 up to 100, required since
    # April 2026); DEFAULT_MARKET_PROTECTION_PCT is also the brokers' own default
    market_protection: float = Field(DEFAULT_MARKET_PROTECTION_PCT, gt=0, le=100)
    exit_retry_max_attempts: int = Field(10, ge=1, le=100)  # our own exit orders per position per day
    exit_retry_backoff_seconds: float = Field(2.0, gt=0, le=600)  # wait after a refused exit, doubling
    exit_retry_max_backoff_seconds: float = Field(60.0, gt=0, le=3600)
    gtt_chase_seconds: float = Field(30.0, gt=0, le=3600)  # a fired leg or exit still open this long is chased


class UpstoxSettings(_Section):
    """Upstox's order rules (engine/brokers/upstox): its X-Algo-Name header and order-API rates."""

    algo_name: str = ""  # the Algo Name of your app in Upstox My Apps; live Upstox refuses orders without it
    orders_per_second: float = Field(10.0, gt=0, le=50)  # per order API: 10 unregistered, 50 registered algos
    orders_per_minute: int = Field(500, ge=1)


class InstrumentsSettings(_Section):
    # "" turns the download off (the band rule of engine/data/ticks.py then gives the ticks)
    upstox_master_url: str = "https://assets.upstox.com/market-quote/instruments/exchange/NSE.json.gz"
    fetch_timeout_seconds: float = Field(30.0, gt=0, le=600)


class ChargesSettings(_Section):
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


class ValidatorSettings(_Section):
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


class NotifySettings(_Section):
    """Trade notifications (engine/notify): a webhook and/or a Prefect notification block."""

    webhook_url: WebhookUrl = WebhookUrl("")  # JSON {"text", "event", ...}; a credential: never logged
    block: str = ""  # a Prefect notification block, "<block type slug>/<block name>"
    timeout_seconds: float = Field(5.0, gt=0, le=60)

    def model_post_init(self, context: Any, /) -> None:
        register_secret(self.webhook_url)  # redacted wherever text leaves the process


class StrategySettings(_Section):
    name: str = "trend_pullback"
    params: dict[str, Any] = Field(default_factory=dict)
    validator: ValidatorSettings = Field(default_factory=ValidatorSettings)  # type: ignore[arg-type]


class Settings(BaseSettings):
    """Every tunable of autotrader. See `config/default.toml` for documentation of each key."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=None,  # `.env` is read by _DotEnvSource (strict, UTF-8 checked)
        extra="forbid",
        allow_inf_nan=False,
    )

    capital: float = Field(1_000_000.0, gt=0)
    entry_windows: list[str] = Field(default_factory=lambda: ["15:10-15:25"])
    broker: Literal["paper", "zerodha", "upstox", "zerodha-sandbox", "upstox-sandbox"] = "paper"
    database_url: DatabaseUrl = DatabaseUrl("sqlite:///var/autotrader.db")
    data_dir: Path = Field(default_factory=shipped_data_dir)
    calendar_file: Path | None = None  # merged over the shipped config/nse_calendar.toml
    corporate_actions_file: Path | None = None  # splits/bonuses (TOML or CSV) applied at pre-open
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    risk: RiskSettings = Field(default_factory=RiskSettings)  # type: ignore[arg-type]
    universe: UniverseSettings = Field(default_factory=UniverseSettings)  # type: ignore[arg-type]
    feed: FeedSettings = Field(default_factory=FeedSettings)  # type: ignore[arg-type]
    paper: PaperSettings = Field(default_factory=PaperSettings)  # type: ignore[arg-type]
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)  # type: ignore[arg-type]
    instruments: InstrumentsSettings = Field(default_factory=InstrumentsSettings)  # type: ignore[arg-type]
    charges: ChargesSettings = Field(default_factory=ChargesSettings)  # type: ignore[arg-type]
    upstox: UpstoxSettings = Field(default_factory=UpstoxSettings)  # type: ignore[arg-type]
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)  # type: ignore[arg-type]

    @field_validator("entry_windows")
    @classmethod
    def _check_windows(cls, value: list[str]) -> list[str]:
        for window in value:
            if not _WINDOW.match(window) or window[:5] >= window[6:]:
                raise ValueError(f"entry window {window!r} must be 'HH:MM-HH:MM' (IST) with start < end")
        return value

    @field_validator("execution")
    @classmethod
    def _check_mis_window(cls, value: ExecutionSettings, info: ValidationInfo) -> ExecutionSettings:
        """MIS only with entry windows that end before the venue's intraday square-off."""
        from engine.brokers.venue_rules import mis_window_problem

        windows, broker = info.data.get("entry_windows"), info.data.get("broker")
        if value.product == "MIS" and windows is not None and broker is not None:
            problem = mis_window_problem(broker, windows)
            if problem:
                raise ValueError(problem)
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
        unknown = _unknown_variables(settings_cls, os.environ, "environment")
        sources = (
            init_settings,
            env_settings,
            _DotEnvSource(settings_cls, unknown),
            _StrictTomlSource(settings_cls, files, unknown),
        )
        if unknown:  # every unknown key of every source at once
            raise SettingsError("; ".join(unknown))
        return sources


# AUTOTRADER_-prefixed variables read by other parts, not by Settings (they may sit in `.env`).
EXTERNAL_PREFIXED_VARIABLES = frozenset(
    {"autotrader_config", "autotrader_alert_webhook_url", "autotrader_feed_serve_token"}  # the last: cli/feed_cmd.py
)


def _read_utf8(path: Path | Any, what: str) -> str:
    """The text of a settings file; a file that is not UTF-8 fails naming the file and the line."""
    data = path.read_bytes()
    try:
        text = str(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SettingsError(f"{what} {path}: line {line} is not UTF-8 text: save the file as UTF-8") from None
    if text.startswith("\ufeff"):  # .env readers would take the mark as part of the first name
        raise SettingsError(f"{what} {path}: starts with a byte-order mark: save the file as UTF-8 without BOM")
    return text


class _StrictTomlSource(TomlConfigSettingsSource):
    """The TOML files, later ones merged key by key over earlier ones (a user `[risk]` table keeps the
    other `[risk]` defaults); records each unknown key, naming the file."""

    def __init__(self, settings_cls: type[BaseSettings], files: list[Path], unknown: list[str]) -> None:
        self.model, self.unknown = settings_cls, unknown  # set first: the base class reads the files in __init__
        super().__init__(settings_cls, toml_file=files, deep_merge=True)

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            table = tomllib.loads(_read_utf8(file_path, "config file"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {file_path}: not valid TOML: {exc}") from None
        self.unknown.extend(_unknown_keys(self.model, table, f"config file {file_path}"))
        return table


class _DotEnvSource(DotEnvSettingsSource):
    """`.env` (UTF-8). It also holds credentials and other tools' variables (KITE_*, PREFECT_API_URL):
    only settings are passed on, and with `unknown` given, each unknown AUTOTRADER_* variable is
    recorded there."""

    def __init__(self, settings_cls: type[BaseSettings], unknown: list[str] | None = None) -> None:
        self.model, self.unknown = settings_cls, unknown  # set first: the base class reads the file in __init__
        super().__init__(settings_cls, env_file=DOTENV_FILE)

    def __call__(self) -> dict[str, Any]:
        return {key: value for key, value in super().__call__().items() if key in self.model.model_fields}

    def _read_env_file(self, file_path: Path) -> Mapping[str, str | None]:
        text = _read_utf8(file_path, "env file")
        if self.unknown is not None:
            variables = dotenv_values(stream=io.StringIO(text))
            self.unknown.extend(_unknown_variables(self.model, variables, str(file_path)))
        return super()._read_env_file(file_path)


def _unknown_part(model: type[BaseModel], path: Sequence[str]) -> tuple[int, list[str]] | None:
    """Where the key `path` (section, ..., key) leaves the settings tree: the index of its first unknown
    part and the valid keys there (none below a plain setting); None when the key exists or lies in a
    free-form table (`strategy.params`, which the strategy's own config validates)."""
    for depth, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return depth, list(model.model_fields)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif get_origin(annotation) is dict or depth == len(path) - 1:
            return None
        else:
            return depth + 1, []
    return None


def unknown_setting(key: str) -> str | None:
    """Why the dotted `key` (e.g. "risk.reward_risk") names no setting ("unknown setting X: did you
    mean Y?"), or None when it does (keys under `strategy.params` are the strategy's own)."""
    path = tuple(key.split("."))
    found = _unknown_part(Settings, path)
    return _unknown_message(path, *found, _dotted) if found is not None else None


def _unknown_message(
    path: tuple[str, ...],
    depth: int,
    valid: list[str],
    render: Callable[[tuple[str, ...]], str],
    shown: str | None = None,
    origin: str | None = None,
) -> str:
    """"unknown setting X (origin): did you mean Y?"; never the value (it may be a credential)."""
    head = f"unknown setting {shown or render(path)}" + (f" ({origin})" if origin else "")
    if not valid:
        return f"{head}: {render(path[:depth])} is a single setting, not a section"
    nearest = difflib.get_close_matches(path[depth], valid, n=1)
    if nearest:
        return f"{head}: did you mean {render((*path[:depth], nearest[0], *path[depth + 1:]))}?"
    section = render(path[:depth]) if depth else "the top level"
    return f"{head}: the keys of {section} are {', '.join(valid)}"


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _variable(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _key_paths(table: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in table.items():
        if isinstance(value, dict) and value:
            yield from _key_paths(value, (*prefix, key))
        else:
            yield (*prefix, key)


def _unknown_keys(model: type[BaseModel], table: Mapping[str, Any], origin: str) -> list[str]:
    """One message per unknown key of a TOML table (an unknown section is reported once)."""
    messages: dict[tuple[str, ...], str] = {}
    for path in _key_paths(table):
        found = _unknown_part(model, path)
        if found:
            depth, valid = found
            unknown = path[: depth + 1]
            messages.setdefault(unknown, _unknown_message(unknown, depth, valid, _dotted, origin=origin))
    return list(messages.values())


def _unknown_variables(model: type[BaseModel], names: Iterable[str], origin: str) -> list[str]:
    """One message per AUTOTRADER_* variable that is no setting (nor read elsewhere)."""
    external = [name.removeprefix(ENV_PREFIX.lower()) for name in EXTERNAL_PREFIXED_VARIABLES]
    messages: list[str] = []
    for name in names:
        if not name.upper().startswith(ENV_PREFIX) or name.lower() in EXTERNAL_PREFIXED_VARIABLES:
            continue
        path = tuple(name[len(ENV_PREFIX):].lower().split("__"))
        found = _unknown_part(model, path)
        if found and path[0] in Credentials.model_fields:
            head = f"unknown setting {name} ({origin})"
            messages.append(f"{head}: broker credentials take no {ENV_PREFIX} prefix, use {path[0].upper()}")
        elif found:
            depth, valid = found
            valid = valid + external if depth == 0 else valid
            messages.append(_unknown_message(path, depth, valid, _variable, shown=name, origin=origin))
    return messages


class Credentials(BaseSettings):
    """Broker credentials, from the environment, `.env`, or Prefect Secret blocks (loaded by flows)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")  # `.env`: see settings_customise_sources

    kite_api_key: SecretStr | None = None
    kite_api_secret: SecretStr | None = None  # only `autotrader login zerodha` reads it
    kite_access_token: SecretStr | None = None
    kite_root_url: str = "https://api.kite.trade"
    upstox_api_key: SecretStr | None = None  # the app's client_id and client_secret: `autotrader login upstox`
    upstox_api_secret: SecretStr | None = None
    upstox_access_token: SecretStr | None = None
    upstox_api_url: str = "https://api.upstox.com"
    upstox_order_url: str = "https://api-hft.upstox.com"

    def model_post_init(self, context: Any, /) -> None:
        register_secrets(self.secret_values())  # redacted wherever text leaves the process, from the moment read

    def secret_values(self) -> list[str]:
        values = (self.kite_api_key, self.kite_api_secret, self.kite_access_token, self.upstox_api_key,
                  self.upstox_api_secret, self.upstox_access_token)
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _DotEnvSource(settings_cls), file_secret_settings


def is_secret_key(key: str) -> bool:
    """Whether a setting or variable name denotes a credential (its value is never shown)."""
    name = key.lower()
    return any(part in name for part in _SECRET_NAME_PARTS)


def _shown_value(key: str, value: Any) -> str:
    """`value` as an error message may show it: credentials hidden, the database password masked."""
    if key.lower().endswith("database_url"):
        return repr(redacted_url(str(value)))
    if is_secret_key(key):
        return "(hidden: a credential)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_shown_value(str(k), v)}" for k, v in value.items()) + "}"
    return repr(value)


def _describe(error: Any) -> str:
    path = tuple(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        found = _unknown_part(Settings, path) or (len(path) - 1, [])
        return _unknown_message(path, *found, _dotted)
    key = _dotted(path)
    return f"setting {key!r}: value {_shown_value(key, error.get('input'))} is invalid: {error['msg']}"


_SOURCE_FIELD = re.compile(r'field "(\w+)"')


def _describe_unparsable(exc: SourceParseError) -> str:
    """A list/table setting from the environment or `.env` that is not JSON."""
    match = _SOURCE_FIELD.search(str(exc))
    key = match[1] if match else "?"
    variable = _variable((key,))
    value = next((v for k, v in os.environ.items() if k.upper() == variable), None)
    shown = _shown_value(key, value) if value is not None else "(from .env)"
    return (
        f"setting {key!r} ({variable}): value {shown} is invalid: "
        'a list or table setting must be JSON, e.g. ["15:10-15:25"] or {"key": 1}'
    )


def load_settings(**overrides: Any) -> Settings:
    """Load and validate settings; raise `SettingsError` naming each bad key, value and rule."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
    except SourceParseError as exc:
        raise SettingsError(_describe_unparsable(exc)) from None
    register_url_password(settings.database_url)  # a PostgreSQL password never reaches any text
    return settings


def load_credentials() -> Credentials:
    return Credentials()
