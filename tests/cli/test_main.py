from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.fixture(autouse=True)
def _restore_logging():
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    for handler in handlers:
        handler.filters[:] = []
    root.setLevel(level)


def test_every_command_redacts_broker_credentials_from_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "kite-secret-token-123")
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0
    record = logging.getLogger("engine.test").makeRecord(
        "engine.test", logging.INFO, __file__, 1, "token is %s", ("kite-secret-token-123",), None
    )
    assert record.getMessage() == "token is ***"
