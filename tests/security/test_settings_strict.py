"""Strict settings: unknown keys from every source fail with a suggestion, non-finite numbers and
non-UTF-8 files are rejected, and no secret value (token, database password) reaches an error or a dump."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from engine.settings import Settings, SettingsError, load_credentials, load_settings, redacted_url

DB_PASSWORD = "hunter2-Pa55"
TOKEN = "tok-4f9c2e7b1d"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in an empty directory (no stray .env) with no AUTOTRADER_/broker variables set."""
    for name in list(os.environ):
        if name.upper().startswith(("AUTOTRADER_", "KITE_", "UPSTOX_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def _user_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes) -> Path:
    path = tmp_path / "live.toml"
    path.write_bytes(content)
    monkeypatch.setenv("AUTOTRADER_CONFIG", str(path))
    return path


def _error(**overrides: object) -> str:
    with pytest.raises(SettingsError) as error:
        load_settings(**overrides)
    return str(error.value)


# --- unknown keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("AUTOTRADER_RISK__MAX_DAILY_LOS_PCT", "AUTOTRADER_RISK__MAX_DAILY_LOSS_PCT"),
        ("AUTOTRADER_CAPITL", "AUTOTRADER_CAPITAL"),
        ("AUTOTRADER_RSIK__MAX_DAILY_LOSS_PCT", "AUTOTRADER_RISK__MAX_DAILY_LOSS_PCT"),
        ("AUTOTRADER_STRATEGY__VALIDATOR__MIN_PRCE", "AUTOTRADER_STRATEGY__VALIDATOR__MIN_PRICE"),
        ("AUTOTRADER_CAPITAL__X", None),  # a plain setting has no keys inside
    ],
)
def test_unknown_environment_variable_is_named_with_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, variable: str, suggestion: str | None
) -> None:
    monkeypatch.setenv(variable, "0.5")
    message = _error()
    assert f"unknown setting {variable} (environment)" in message
    if suggestion:
        assert f"did you mean {suggestion}?" in message


def test_the_reported_environment_typo_gives_the_exact_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_RISK__MAX_DAILY_LOS_PCT", "0.5")
    assert _error() == (
        "unknown setting AUTOTRADER_RISK__MAX_DAILY_LOS_PCT (environment): "
        "did you mean AUTOTRADER_RISK__MAX_DAILY_LOSS_PCT?"
    )


def test_unknown_variable_in_dotenv_is_named_with_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("KITE_API_KEY=k\nAUTOTRADER_RISK__MAX_DAILY_LOS_PCT=0.5\n")
    message = _error()
    assert "unknown setting AUTOTRADER_RISK__MAX_DAILY_LOS_PCT (.env)" in message
    assert "did you mean AUTOTRADER_RISK__MAX_DAILY_LOSS_PCT?" in message


def test_unknown_key_in_a_section_of_the_user_toml_is_named_with_file_and_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _user_toml(tmp_path, monkeypatch, b"[risk]\nmax_daily_los_pct = 0.5\n")
    message = _error()
    assert f"unknown setting risk.max_daily_los_pct (config file {path})" in message
    assert "did you mean risk.max_daily_loss_pct?" in message


def test_unknown_key_in_a_nested_section_of_the_user_toml_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _user_toml(tmp_path, monkeypatch, b"[strategy.validator]\nmin_prise = 10.0\n")
    assert "did you mean strategy.validator.min_price?" in _error()


@pytest.mark.parametrize(
    ("content", "key", "suggestion"),
    [
        (b"capitl = 5.0\n", "capitl", "capital"),
        (b"[rsik]\nmax_daily_loss_pct = 1.0\n", "rsik", "risk"),
    ],
)
def test_unknown_top_level_key_of_the_user_toml_is_named_with_file_and_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, key: str, suggestion: str
) -> None:
    path = _user_toml(tmp_path, monkeypatch, content)
    message = _error()
    assert f"unknown setting {key} (config file {path}): did you mean {suggestion}?" in message


def test_strategy_params_stay_free_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _user_toml(tmp_path, monkeypatch, b"[strategy.params]\nany_param = 3\n")
    monkeypatch.setenv("AUTOTRADER_STRATEGY__PARAMS__OTHER_PARAM", "4")
    assert load_settings().strategy.params == {"any_param": 3, "other_param": "4"}


def test_variables_read_outside_settings_stay_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("AUTOTRADER_ALERT_WEBHOOK_URL=http://127.0.0.1:9/hook\n")
    monkeypatch.setenv("AUTOTRADER_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    assert load_settings().capital == 1_000_000.0


def test_unknown_keyword_override_is_named_with_a_suggestion() -> None:
    assert "did you mean risk.max_daily_loss_pct?" in _error(risk={"max_daily_los_pct": 0.5})


# --- non-finite numbers -------------------------------------------------------------------------------


def _float_variables(model: type[BaseModel], prefix: str) -> list[str]:
    names: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(_float_variables(annotation, f"{prefix}{name.upper()}__"))
        elif annotation in (float, float | None):
            names.append(f"{prefix}{name.upper()}")
    return names


FLOAT_VARIABLES = _float_variables(Settings, "AUTOTRADER_")


def test_every_float_setting_is_covered() -> None:
    assert "AUTOTRADER_CAPITAL" in FLOAT_VARIABLES
    assert "AUTOTRADER_STRATEGY__VALIDATOR__MAX_PRICE" in FLOAT_VARIABLES
    assert len(FLOAT_VARIABLES) >= 30


@pytest.mark.parametrize("variable", FLOAT_VARIABLES)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_number_is_rejected_for_every_float_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    message = _error()
    key = variable.removeprefix("AUTOTRADER_").lower().replace("__", ".")
    assert f"setting {key!r}" in message
    assert "finite" in message


def test_non_finite_number_in_toml_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _user_toml(tmp_path, monkeypatch, b"capital = inf\n")
    assert "finite" in _error()


# --- files that are not UTF-8 ----------------------------------------------------------------------------


def test_non_utf8_config_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _user_toml(tmp_path, monkeypatch, b"# r\xe9glages\ncapital = 5.0\n")
    message = _error()
    assert str(path) in message
    assert "UTF-8" in message


def test_non_utf8_dotenv_names_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"# r\xe9glages\nAUTOTRADER_CAPITAL=5\n")
    assert _error() == "env file .env: line 1 is not UTF-8 text: save the file as UTF-8"


def test_non_utf8_dotenv_fails_clearly_for_the_credentials_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(f"KITE_ACCESS_TOKEN={TOKEN}\n# r\xe9glages\n".encode("latin-1"))
    with pytest.raises(SettingsError) as error:
        load_credentials()
    assert str(error.value) == "env file .env: line 2 is not UTF-8 text: save the file as UTF-8"


def test_dotenv_starting_with_a_byte_order_mark_fails_instead_of_hiding_its_first_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xef\xbb\xbfAUTOTRADER_RISK__MAX_DAILY_LOSS_PCT=0.5\n")
    assert "byte-order mark" in _error()


# --- no secret value in an error ------------------------------------------------------------------------


def test_token_in_dotenv_under_a_settings_name_is_named_but_not_shown(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"AUTOTRADER_KITE_ACCESS_TOKEN={TOKEN}\n")
    message = _error()
    assert "AUTOTRADER_KITE_ACCESS_TOKEN (.env): broker credentials take no AUTOTRADER_ prefix" in message
    assert "use KITE_ACCESS_TOKEN" in message
    assert TOKEN not in message


def test_token_in_environment_under_a_settings_name_is_named_but_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_UPSTOX_ACCESS_TOKEN", TOKEN)
    message = _error()
    assert "AUTOTRADER_UPSTOX_ACCESS_TOKEN (environment)" in message
    assert TOKEN not in message


def test_token_passed_as_keyword_is_named_but_not_shown() -> None:
    message = _error(kite_access_token=TOKEN)
    assert "kite_access_token" in message
    assert TOKEN not in message


def test_invalid_database_url_error_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"postgresql:/trader:{DB_PASSWORD}@db.internal/autotrader")
    message = _error()
    assert "database_url" in message
    assert DB_PASSWORD not in message


# --- the database password ------------------------------------------------------------------------------


def test_database_password_is_not_in_repr_str_or_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql+psycopg://trader:{DB_PASSWORD}@db.internal:5432/autotrader"
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", url)
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump()),
                 repr(settings.database_url)):
        assert DB_PASSWORD not in text
        assert "postgresql+psycopg://trader:***@db.internal:5432/autotrader" in text
    assert settings.database_url == url  # the storage code still gets the usable URL
    assert isinstance(settings.database_url, str)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@host/db", "postgresql://u:***@host/db"),
        ("postgresql://u:p@ss/w@host:5432/db", "postgresql://u:***@host:5432/db"),  # unescaped @ and /
        ("postgresql://u@host/db", "postgresql://u@host/db"),
        ("postgresql://host/db?user=u&password=pw&sslmode=require",
         "postgresql://host/db?user=u&password=***&sslmode=require"),
        ("sqlite:///var/autotrader.db", "sqlite:///var/autotrader.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_redacted_url_masks_only_the_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
