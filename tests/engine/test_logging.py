"""Secrets never reach a log record: message, arguments and exception text are redacted."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from engine.logging import REDACTED, SecretRedactingFilter, configure_logging
from engine.settings import Credentials

API_KEY = "kite-api-key-9f8e7d"
ACCESS_TOKEN = "access-token-AbC123xyz"


@pytest.fixture()
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("autotrader.test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    credentials = Credentials(kite_api_key=SecretStr(API_KEY), kite_access_token=SecretStr(ACCESS_TOKEN))
    handler.addFilter(SecretRedactingFilter(credentials.secret_values()))
    yield stream
    logger.removeHandler(handler)


def test_secret_in_message_and_args_is_redacted(captured: io.StringIO) -> None:
    logger = logging.getLogger("autotrader.test.redaction")
    logger.info("connecting with key %s", API_KEY)
    logger.warning(f"header Authorization: token {API_KEY}:{ACCESS_TOKEN}")
    logger.info("payload %r", {"access_token": ACCESS_TOKEN})
    output = captured.getvalue()
    assert API_KEY not in output and ACCESS_TOKEN not in output
    assert output.count(REDACTED) == 4
    assert "connecting with key ***" in output


def test_secret_in_exception_text_is_redacted(captured: io.StringIO) -> None:
    logger = logging.getLogger("autotrader.test.redaction")
    try:
        raise RuntimeError(f"login failed for token {ACCESS_TOKEN}")
    except RuntimeError:
        logger.exception("broker call failed")
    output = captured.getvalue()
    assert "RuntimeError: login failed for token ***" in output
    assert ACCESS_TOKEN not in output


def test_configure_logging_covers_other_loggers() -> None:
    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        redactor = configure_logging("INFO", [API_KEY])
        redactor.add_secrets([ACCESS_TOKEN])  # e.g. loaded later from a Prefect Secret block
        logging.getLogger("some.library").info("token=%s key=%s", ACCESS_TOKEN, API_KEY)
        assert stream.getvalue().strip() == "token=*** key=***"
    finally:
        root.removeHandler(handler)
        logging.setLogRecordFactory(factory)
        for each in root.handlers:
            for f in [f for f in each.filters if isinstance(f, SecretRedactingFilter)]:
                each.removeFilter(f)


def test_configure_logging_covers_handlers_added_later_on_loggers_that_do_not_propagate() -> None:
    factory = logging.getLogRecordFactory()
    stream = io.StringIO()
    logger = logging.getLogger("autotrader.test.own_handler")  # like Prefect's loggers: own handler, no propagation
    handler = logging.StreamHandler(stream)
    try:
        configure_logging("INFO", [ACCESS_TOKEN])
        logger.propagate = False
        logger.addHandler(handler)
        logger.warning("token=%s", ACCESS_TOKEN)
        assert stream.getvalue().strip() == "token=***"
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(factory)
        for each in logging.getLogger().handlers:
            for f in [f for f in each.filters if isinstance(f, SecretRedactingFilter)]:
                each.removeFilter(f)


def test_a_bad_format_string_neither_raises_nor_leaks(captured: io.StringIO) -> None:
    logger = logging.getLogger("autotrader.test.redaction")
    logger.info("order %d placed with %s", "not-a-number", ACCESS_TOKEN)  # must not raise into the caller
    output = captured.getvalue()
    assert "order %d placed with %s" in output and REDACTED in output
    assert ACCESS_TOKEN not in output


def test_short_or_empty_values_are_not_redacted() -> None:
    redactor = SecretRedactingFilter(["", "ab"])
    assert redactor.redact("ab cd") == "ab cd"


def test_a_secret_registered_after_logging_was_configured_is_redacted(captured: io.StringIO) -> None:
    """One registry (engine/secrets.py): a token refreshed mid-session joins every filter at once."""
    from engine.secrets import register_secret

    refreshed = "refreshed-token-Zy987654"
    logger = logging.getLogger("autotrader.test.redaction")
    logger.info("before %s", refreshed)
    register_secret(refreshed)
    logger.info("after %s", refreshed)
    assert captured.getvalue().splitlines() == [f"INFO before {refreshed}", "INFO after ***"]


def test_token_shapes_are_redacted_from_records_even_unregistered(captured: io.StringIO) -> None:
    logger = logging.getLogger("autotrader.test.redaction")
    logger.error("gateway echoed %s", {"Authorization": "Bearer eyJunregistered.Token-123"})
    assert captured.getvalue().strip() == "ERROR gateway echoed {'Authorization': 'Bearer ***'}"
