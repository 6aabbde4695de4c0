from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.indicators.aggregate import aggregate_bars
from engine.indicators.metadata import read_metadata
from engine.models import Timeframe
from engine.storage.bars import BarStore
from tests.engine.indicators.reference import reference_values, resample, synthetic_daily


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    store = BarStore(root / "bars")
    store.write("AAA", "1d", synthetic_daily(1200, seed=21), merge=False)
    store.write("BBB", "1d", synthetic_daily(30, seed=22, start="2022-01-03"), merge=False)
    return root


def test_indicators_json_equals_pandas_including_the_forming_week_and_month(data_dir: Path) -> None:
    daily = BarStore(data_dir / "bars").read("AAA", "1d")
    # a mid-week, mid-month day: the week and month containing it are still forming
    asof_row = next(i for i in range(900, 1000) if daily["ts"].iloc[i].weekday() == 2 and daily["ts"].iloc[i].day > 10)
    asof = daily["ts"].iloc[asof_row].date()
    result = CliRunner().invoke(app, ["indicators", "AAA", "--asof", asof.isoformat(), "--data-dir", str(data_dir),
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["daily", "weekly", "monthly"]
    upto = daily.iloc[: asof_row + 1]
    from engine.indicators import IndicatorConfig

    for name, bars in (("daily", upto.set_index("ts")), ("weekly", resample(upto, "W-SUN")),
                       ("monthly", resample(upto, "ME"))):  # fmt: skip
        expected = reference_values(bars, IndicatorConfig()).iloc[-1]
        frame = payload[name]
        assert frame["close"] == upto["close"].iloc[-1]
        assert frame["high"] == bars["high"].iloc[-1] and frame["volume"] == bars["volume"].iloc[-1]
        for key in ("sma_9", "sma_200", "ema_20", "atr_14", "highest_high_20", "lowest_low_20", "avg_volume_20",
                    "sma_9_prev", "atr_14_prev"):  # fmt: skip
            if pd.isna(expected[key]):
                assert frame[key] is None, (name, key)
            else:
                assert frame[key] == pytest.approx(expected[key], rel=1e-9), (name, key)
    assert payload["monthly"]["sma_200"] is None  # not enough months
    weekly = aggregate_bars(upto, Timeframe.WEEK)
    assert payload["weekly"]["bar_start"] == weekly["ts"].iloc[-1].isoformat()


def test_indicators_table_and_clear_errors(data_dir: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(app, ["indicators", "aaa", "--data-dir", str(data_dir)])
    assert table.exit_code == 0 and "sma_200" in table.stdout and "weekly" in table.stdout
    unknown = runner.invoke(app, ["indicators", "ZZZ", "--data-dir", str(data_dir)])
    assert unknown.exit_code == 2 and "unknown symbol ZZZ" in unknown.output
    holiday = runner.invoke(app, ["indicators", "AAA", "--asof", "1999-01-01", "--data-dir", str(data_dir)])
    assert holiday.exit_code == 2 and "no daily bar on 1999-01-01" in holiday.output
    bad = runner.invoke(app, ["indicators", "AAA", "--asof", "yesterday", "--data-dir", str(data_dir)])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_indicators_of_a_symbol_whose_bars_are_all_bad_is_a_clear_error(tmp_path: Path) -> None:
    bars = synthetic_daily(5, seed=23)
    bars["high"] = bars["low"] / 2  # every bar OHLC-inconsistent: none can be folded in
    BarStore(tmp_path / "bars").write("BAD", "1d", bars, merge=False)
    day = bars["ts"].iloc[-1].date().isoformat()
    result = CliRunner().invoke(app, ["indicators", "BAD", "--asof", day, "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 2, result.output
    assert "BAD" in result.output and "5 bad daily bar(s)" in result.output
    assert result.stdout == ""
    BarStore(tmp_path / "bars").write("EMPTY", "1d", bars.iloc[:0], merge=False)
    empty = CliRunner().invoke(app, ["indicators", "EMPTY", "--data-dir", str(tmp_path)])
    assert empty.exit_code == 2 and "unknown symbol EMPTY: no daily bars" in empty.output


def test_metadata_build_writes_a_loadable_file(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "indicators.parquet"
    result = CliRunner().invoke(app, ["metadata", "build", "--asof", "2021-06-30", "--data-dir", str(data_dir),
                                      "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["instruments"] == 1 and summary["missing"] == ["BBB"]  # BBB starts in 2022
    metadata = read_metadata(out)
    assert metadata.asof.isoformat() == "2021-06-30"
    assert metadata.instruments["AAA"].last_day is not None
    assert metadata.instruments["AAA"].last_day.isoformat() <= "2021-06-30"
    default = CliRunner().invoke(app, ["metadata", "build", "--data-dir", str(data_dir)])
    assert default.exit_code == 0, default.output
    assert sorted(read_metadata(data_dir / "metadata" / "indicators.parquet").instruments) == ["AAA", "BBB"]
    missing = CliRunner().invoke(app, ["metadata", "build", "--data-dir", str(data_dir), "--symbols", "AAA,NOPE"])
    assert missing.exit_code == 2 and "NOPE" in missing.output


def test_print_json_writes_strict_json_for_missing_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.common import print_json

    print_json({"atr_14": float("nan"), "values": [float("inf"), 1.5]})
    assert json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(name)) == {
        "atr_14": None,
        "values": [None, 1.5],
    }
