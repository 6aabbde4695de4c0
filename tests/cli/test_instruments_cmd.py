"""`autotrader instruments refresh|show` on a small table (a replayed September-2025 day)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.data.instruments import write_instrument_table
from engine.storage import BarStore
from tests.engine.data.test_master import _daily, _row, _table

# the CLI configures logging (a redacting record factory, root handlers): put it back after each test
pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    write_instrument_table(_table(_row("RELIANCE", "INE002A01018", kite=738561), _row("MRF", "INE883A01011")), data)
    store = BarStore(data / "bars")
    _daily(store, "RELIANCE", date(2025, 9, 29), 1380.0)
    _daily(store, "MRF", date(2025, 9, 29), 152_000.0)
    monkeypatch.setenv("AUTOTRADER_DATA_DIR", str(data))
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return tmp_path


def test_refresh_then_show_as_json(workspace: Path) -> None:
    refreshed = CliRunner().invoke(app, ["instruments", "refresh", "--date", "2025-09-30", "--json"])
    assert refreshed.exit_code == 0, refreshed.output
    result = json.loads(refreshed.output)
    assert {c["symbol"]: c["new"] for c in result["tick_changes"]} == {"RELIANCE": 0.1, "MRF": 5.0}
    shown = CliRunner().invoke(app, ["instruments", "show", "mrf", "--date", "2025-09-30", "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.output)
    assert {k: payload[k] for k in ("symbol", "isin", "instrument_key", "tick_size", "lot_size", "as_of")} == {
        "symbol": "MRF", "isin": "INE883A01011", "instrument_key": "NSE_EQ|INE883A01011", "tick_size": 5.0,
        "lot_size": 1, "as_of": "2025-09-30"}
    assert {"kite_token", "name", "source"} <= set(payload)
    # a day before the refresh still sees the shipped master
    before = json.loads(CliRunner().invoke(app, ["instruments", "show", "MRF", "--date", "2025-09-29",
                                                 "--json"]).output)
    assert (before["tick_size"], before["source"]) == (0.05, "shipped")


def test_table_output_fits_80_columns(workspace: Path) -> None:
    for args in (["instruments", "refresh", "--date", "2025-09-30"], ["instruments", "show", "RELIANCE"]):
        result = CliRunner().invoke(app, args, terminal_width=80)
        assert result.exit_code == 0, result.output
        assert result.output and max(len(line) for line in result.output.splitlines()) <= 80


def test_unknown_symbol_and_bad_date_are_clear_errors(workspace: Path) -> None:
    unknown = CliRunner().invoke(app, ["instruments", "show", "RELIANC"])
    assert unknown.exit_code == 2 and "did you mean RELIANCE" in unknown.output
    assert unknown.exception is None or isinstance(unknown.exception, SystemExit)
    bad = CliRunner().invoke(app, ["instruments", "refresh", "--date", "2025-02-30"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
