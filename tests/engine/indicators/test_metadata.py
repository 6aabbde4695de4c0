from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.indicators import IndicatorConfig, InstrumentIndicators
from engine.indicators.metadata import (
    ASOF_KEY,
    CONFIG_KEY,
    SCHEMA_VERSION_KEY,
    MetadataError,
    build_metadata,
    load_metadata,
    read_metadata,
    save_metadata,
)
from engine.indicators.multitimeframe import DAY_MS, IST_OFFSET_MS, day_number
from engine.models import Bar, Timeframe
from engine.storage.bars import BarStore
from tests.engine.indicators.reference import synthetic_daily


def straight_through(daily: pd.DataFrame, config: IndicatorConfig) -> InstrumentIndicators:
    indicators = InstrumentIndicators("X", config)
    for row in daily.itertuples():
        assert indicators.on_bar(Bar("X", row.ts.to_pydatetime(), row.open, row.high, row.low, row.close, row.volume))
    return indicators


def assert_same_snapshot(a: InstrumentIndicators, b: InstrumentIndicators) -> None:
    left, right = a.snapshot(), b.snapshot()
    for tf in (Timeframe.DAY, Timeframe.WEEK, Timeframe.MONTH):
        x, y = left.timeframe(tf), right.timeframe(tf)
        assert (x.bar_start, x.bars, x.open, x.high, x.low, x.close) == (y.bar_start, y.bars, y.open, y.high, y.low,
                                                                         y.close), tf  # fmt: skip
        assert x.volume == pytest.approx(y.volume, rel=1e-12)
        assert x.values.keys() == y.values.keys()
        for name, value in x.values.items():
            other = y.values[name]
            assert (value is None) == (other is None), f"{tf} {name}: {value} vs {other}"
            if value is not None:
                assert value == pytest.approx(other, rel=1e-9, abs=1e-12), f"{tf} {name}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    store = BarStore(tmp_path_factory.mktemp("bars"))
    store.write("AAA", "1d", synthetic_daily(900, seed=11), merge=False)
    store.write("BBB", "1d", synthetic_daily(40, seed=12, start="2021-05-03"), merge=False)  # short history
    return store


@pytest.mark.parametrize("config", [IndicatorConfig(), IndicatorConfig(sma_periods=(2, 5), ema_periods=(3, 7),
                                                                       atr_periods=(2,), extreme_periods=(4,),
                                                                       avg_volume_periods=(3,))])  # fmt: skip
@pytest.mark.parametrize("cut", [0, 1, 3, 17])  # asof = the last day minus `cut` trading days
def test_build_equals_computing_straight_through(store: BarStore, config: IndicatorConfig, cut: int) -> None:
    for symbol in ("AAA", "BBB"):
        daily = store.read(symbol, "1d")
        daily = daily.iloc[: len(daily) - cut]
        asof = daily["ts"].iloc[-1].date()
        built = build_metadata(store, [symbol], asof, config).instruments[symbol]
        assert_same_snapshot(built, straight_through(daily, config))


def test_asof_on_a_day_without_a_bar_uses_the_bars_before(store: BarStore) -> None:
    daily = store.read("AAA", "1d")
    sunday = next(d for d in pd.date_range(daily["ts"].iloc[100].date(), periods=7) if d.weekday() == 6).date()
    if sunday in set(daily["ts"].dt.date):
        sunday += timedelta(days=7)
    metadata = build_metadata(store, ["AAA", "NOPE"], sunday)
    assert metadata.missing == ["NOPE"]
    expected = straight_through(daily[daily["ts"].dt.date <= sunday], IndicatorConfig())
    assert_same_snapshot(metadata.instruments["AAA"], expected)
    assert metadata.instruments["AAA"].last_day == expected.last_day < sunday


def test_save_load_continue_equals_straight_through(store: BarStore, tmp_path: Path) -> None:
    config = IndicatorConfig(sma_periods=(3, 9), ema_periods=(5,), atr_periods=(4,), extreme_periods=(6,),
                             avg_volume_periods=(5,))  # fmt: skip
    daily = store.read("AAA", "1d")
    history, live = daily.iloc[:-30], daily.iloc[-30:]
    asof = history["ts"].iloc[-1].date()
    path = save_metadata(tmp_path / "meta" / "indicators.parquet", build_metadata(store, ["AAA", "BBB"], asof, config))
    loaded = read_metadata(path)
    assert (loaded.asof, loaded.config, sorted(loaded.instruments)) == (asof, config, ["AAA", "BBB"])
    restored = load_metadata(path)["AAA"]
    reference = straight_through(history, config)
    assert_same_snapshot(restored, reference)
    # continue both: ticks for 30 days (4 ticks inside each bar), with a save/load in the middle
    for n, row in enumerate(live.itertuples()):
        base = day_number(row.ts.date()) * DAY_MS - IST_OFFSET_MS + 33_300_000
        for indicators in (restored, reference):
            for i, price in enumerate((row.open, row.high, row.low, row.close)):
                assert indicators.update_tick(price, row.volume * (i + 1) // 4, base + i)
            indicators.close_day()
        assert_same_snapshot(restored, reference)
        if n == 10:
            mid = build_metadata(store, ["AAA"], asof, config)
            mid.instruments["AAA"] = restored
            restored = load_metadata(save_metadata(tmp_path / "mid.parquet", mid))["AAA"]
            assert_same_snapshot(restored, reference)


def test_a_file_of_another_schema_version_is_refused(store: BarStore, tmp_path: Path) -> None:
    path = save_metadata(tmp_path / "m.parquet", build_metadata(store, ["AAA"], date(2030, 1, 1)))
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, SCHEMA_VERSION_KEY: b"999"}), path)
    with pytest.raises(MetadataError, match="schema version"):
        load_metadata(path)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(MetadataError, match="cannot read"):
        load_metadata(tmp_path / "junk.parquet")


@pytest.mark.parametrize(
    ("key", "value"), [(CONFIG_KEY, b'{"sma_periods": [0]}'), (CONFIG_KEY, b"{"), (ASOF_KEY, b"someday")]
)
def test_a_file_with_unusable_labels_is_a_metadata_error(
    store: BarStore, tmp_path: Path, key: bytes, value: bytes
) -> None:
    path = save_metadata(tmp_path / "m.parquet", build_metadata(store, ["AAA"], date(2030, 1, 1)))
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, key: value}), path)
    with pytest.raises(MetadataError, match=r"m\.parquet"):
        load_metadata(path)


def test_labels_survive_save_and_load(store: BarStore, tmp_path: Path) -> None:
    metadata = build_metadata(
        store, ["AAA", "BBB"], date(2030, 1, 1), instrument_keys={"AAA": "NSE_EQ|A"}, history_complete={"BBB": False}
    )
    loaded = load_metadata(save_metadata(tmp_path / "m.parquet", metadata))
    assert (loaded["AAA"].instrument_key, loaded["AAA"].history_complete) == ("NSE_EQ|A", True)
    assert loaded["BBB"].snapshot().history_complete is False
    assert loaded["AAA"].initialized and not loaded["BBB"].initialized  # 40 bars < sma_200
    assert not loaded["AAA"].timeframe_initialized(Timeframe.MONTH)


def test_bad_bars_are_skipped_and_counted_and_a_broken_file_does_not_stop_the_build(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "bars")
    daily = synthetic_daily(300, seed=31)
    bad = daily.copy()
    bad.loc[10, "close"] = float("nan")
    bad.loc[20, "low"] = -1.0
    bad.loc[30, "high"] = bad.loc[30, "low"] - 1  # inconsistent
    store.write("BAD", "1d", bad, merge=False)
    store.write("GOOD", "1d", daily, merge=False)
    broken = tmp_path / "bars" / "timeframe=1d" / "symbol=BROKEN" / "part-0.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PAR1 garbage")
    metadata = build_metadata(store, ["BROKEN", "BAD", "GOOD"], date(2030, 1, 1))
    assert sorted(metadata.instruments) == ["BAD", "GOOD"]
    assert list(metadata.errors) == ["BROKEN"]
    assert metadata.rejected_bars == {"BAD": 3}
    incremental = InstrumentIndicators("BAD")
    for row in bad.itertuples():
        incremental.on_bar(Bar("BAD", row.ts.to_pydatetime(), row.open, row.high, row.low, row.close, row.volume))
    assert incremental.rejections == {"bad_bar": 3}
    assert_same_snapshot(metadata.instruments["BAD"], incremental)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    bars=st.integers(1, 400),
    periods=st.lists(st.integers(1, 30), min_size=5, max_size=5),
)
def test_any_history_and_config_build_equals_straight_through(
    tmp_path_factory: pytest.TempPathFactory, seed: int, bars: int, periods: list[int]
) -> None:
    config = IndicatorConfig(
        sma_periods=(periods[0],), ema_periods=(periods[1],), atr_periods=(periods[2],),
        extreme_periods=(periods[3],), avg_volume_periods=(periods[4],),
    )  # fmt: skip
    daily = synthetic_daily(bars, seed=seed)
    store = BarStore(tmp_path_factory.mktemp("prop"))
    store.write("P", "1d", daily, merge=False)
    asof = daily["ts"].iloc[-1].date()
    built = build_metadata(store, ["P"], asof, config).instruments["P"]
    assert_same_snapshot(built, straight_through(daily, config))
