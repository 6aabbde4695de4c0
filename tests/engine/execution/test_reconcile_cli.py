"""`autotrader reconcile [--json]` end to end on a database file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.models import Instrument
from engine.storage.db import init_db
from tests.engine.execution.conftest import open_position


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instrument: Instrument) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db = init_db(url)
    open_position(db, instrument, 10)  # the journal holds a position the (fresh) paper venue does not
    db.dispose()
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", url)
    monkeypatch.setenv("AUTOTRADER_BROKER", "paper")
    return url


def test_reconcile_json_reports_and_resolves_a_position_closed_outside(database: str) -> None:
    result = CliRunner().invoke(app, ["reconcile", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["broker"] == "paper" and report["clean"] is False
    assert [d["kind"] for d in report["differences"]] == ["POSITION_CLOSED"]
    again = json.loads(CliRunner().invoke(app, ["reconcile", "--json"]).output)
    assert again["clean"] is True  # resolved the first time


def test_reconcile_table_and_a_clear_error_for_missing_credentials(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(app, ["reconcile"])
    assert result.exit_code == 0 and "POSITION_CLOSED" in result.output
    monkeypatch.setenv("AUTOTRADER_BROKER", "zerodha")
    monkeypatch.setenv("KITE_ROOT_URL", "https://api.kite.trade")
    monkeypatch.delenv("KITE_API_KEY", raising=False)
    monkeypatch.delenv("KITE_ACCESS_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["reconcile"])
    assert result.exit_code == 2
    assert "KITE_API_KEY" in result.output


def test_reconcile_refuses_the_embedded_kite_sandbox(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTRADER_BROKER", "zerodha-sandbox")  # an empty sandbox is not the truth
    result = CliRunner().invoke(app, ["reconcile", "--json"])
    assert result.exit_code == 2
    assert "reconcile refuses AUTOTRADER_BROKER=zerodha-sandbox" in result.output
