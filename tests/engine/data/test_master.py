"""The instrument master of a day: broker masters merged into the table, the band-rule fallback and
cross-check, renames and ISIN changes carried to positions and the bar store, the pre-open refresh."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlmodel import select

from engine.brokers.upstox.sandbox_instruments import MASTER_PATH, UpstoxMasterServer
from engine.brokers.zerodha.sandbox_instruments import KiteInstrumentsServer
from engine.clock import LiveClock
from engine.data.instruments import INSTRUMENT_COLUMNS, write_instrument_table
from engine.data.master import (
    BrokerInstrument,
    carry_changes,
    instrument_json,
    kite_instruments,
    load_master_as_of,
    merge_broker_masters,
    refresh_table,
    upstox_instruments,
)
from engine.models import IST, Timeframe
from engine.session import day as day_work
from engine.session.stages import TradingDayContext, open_trading_day
from engine.storage import BarStore, init_db, session_scope
from engine.storage.tables import GttRow, InstrumentRow, PositionRow
from tests.conftest import PROJECT_ROOT

MASTERS = Path(__file__).parent / "resources" / "masters"  # copies of ../shared's, see its README.md
KITE_CSV = MASTERS / "zerodha_kite_instruments_NSE_2026-01.csv.gz"
UPSTOX_JSON = MASTERS / "upstox_NSE_instruments_2025-01.json.gz"
SEPTEMBER_CLOSES = MASTERS / "nifty50_closes_2025-09-30.csv"


def upstox_master_rows() -> list[dict[str, Any]]:
    return list(json.loads(gzip.decompress(UPSTOX_JSON.read_bytes())))


def kite_master_rows() -> list[dict[str, str]]:
    with gzip.open(KITE_CSV, "rt", newline="") as lines:
        return list(csv.DictReader(lines))
SEPTEMBER = date(2025, 9, 30)


def _row(symbol: str, isin: str, tick: float = 0.05, token: str = "1", kite: int | None = None) -> dict[str, object]:
    return {"instrument_key": f"NSE_EQ|{isin}", "symbol": symbol, "isin": isin, "name": symbol.title(),
            "tick_size": tick, "lot_size": 1, "kite_token": kite, "exchange_token": token,
            "market_cap_cr": 50_000.0, "shares_outstanding": 1e9, "price_factor": 1.0, "history_complete": True,
            "history_start": date(2020, 1, 1), "history_end": date(2024, 6, 28), "history_source": "test",
            "repaired_5min_bars": 0, "history_note": "", "master_note": ""}


def _table(*rows: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))[INSTRUMENT_COLUMNS]
    frame["kite_token"] = frame["kite_token"].astype("Int64")
    return frame


def _daily(store: BarStore, symbol: str, day: date, close: float) -> None:
    frame = pd.DataFrame([{"ts": pd.Timestamp(day, tz=IST), "open": close, "high": close, "low": close,
                           "close": close, "volume": 1000}])
    store.write(symbol, Timeframe.DAY, frame)


# ---------------------------------------------------------------- what was seen: stale ticks


@pytest.fixture
def september_day(tmp_path: Path) -> TradingDayContext:
    """A replayed 2025-09-30 whose table still carries the January-2025 ticks (0.05 for everyone)."""
    data = tmp_path / "data"
    write_instrument_table(_table(_row("CHEAP", "INE000A01011"), _row("MID", "INE000B01011"),
                                  _row("DEAR", "INE000C01011"), _row("HEAVY", "INE000D01011"),
                                  _row("NOCLOSE", "INE000E01011", tick=0.01)), data)
    store = BarStore(data / "bars")
    for symbol, close in (("CHEAP", 180.0), ("MID", 640.0), ("DEAR", 1380.0), ("HEAVY", 26_500.0)):
        _daily(store, symbol, date(2025, 9, 29), close)
    return open_trading_day(SEPTEMBER, LiveClock(), database_url=f"sqlite:///{tmp_path / 'day.db'}", data_dir=data)


def test_replayed_day_after_april_2025_gets_band_ticks_at_its_prices(september_day: TradingDayContext) -> None:
    result = day_work.refresh_instrument_master(september_day)
    with session_scope(september_day.db) as session:
        ticks = {row.symbol: row.tick_size for row in session.exec(select(InstrumentRow)).all()}
    assert ticks == {"CHEAP": 0.01, "MID": 0.05, "DEAR": 0.10, "HEAVY": 5.0, "NOCLOSE": 0.01}
    assert result["instruments"] == 5 and result["sources"]["broker"].startswith("not read: replayed day")
    assert {c["symbol"]: (c["old"], c["new"]) for c in result["tick_changes"]} == {
        "CHEAP": (0.05, 0.01), "DEAR": (0.05, 0.10), "HEAVY": (0.05, 5.0)}
    traded = {i.symbol: i.tick_size for i in day_work.day_instruments(september_day)}
    assert traded["DEAR"] == 0.10 and traded["HEAVY"] == 5.0  # what the session trades with


def test_replayed_day_before_the_band_rule_keeps_0_05(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_instrument_table(_table(_row("CHEAP", "INE000A01011", tick=0.01), _row("DEAR", "INE000C01011")), data)
    store = BarStore(data / "bars")
    _daily(store, "CHEAP", date(2024, 6, 3), 180.0)
    _daily(store, "DEAR", date(2024, 6, 3), 1380.0)
    context = open_trading_day(date(2024, 6, 4), LiveClock(), database_url=f"sqlite:///{tmp_path / 'd.db'}",
                               data_dir=data)
    day_work.refresh_instrument_master(context)
    assert {i.symbol: i.tick_size for i in day_work.day_instruments(context)} == {"CHEAP": 0.05, "DEAR": 0.05}
    # a later replay of an earlier day does not see this day's master
    assert load_master_as_of(data, day_work.work_dir(context), date(2024, 6, 3))["tick_size"].tolist() == [0.01, 0.05]


# ---------------------------------------------------------------- parsing and merging the broker masters


def test_upstox_master_rows_are_equities_with_rupee_ticks() -> None:
    rows = {r.symbol: r for r in upstox_instruments(upstox_master_rows())}
    assert len(rows) == 2025  # SOURCES.md: 2,025 NSE_EQ EQ rows
    reliance = rows["RELIANCE"]
    assert (reliance.isin, reliance.instrument_key, reliance.tick_size, reliance.lot_size) == (
        "INE002A01018", "NSE_EQ|INE002A01018", 0.05, 1)


def test_kite_master_rows_and_merge_by_exchange_token() -> None:
    kite = kite_instruments(kite_master_rows())
    upstox = upstox_instruments(upstox_master_rows())
    merged = {r.symbol: r for r in merge_broker_masters(upstox, kite)}
    reliance = merged["RELIANCE"]
    assert (reliance.kite_token, reliance.isin, reliance.source) == (738561, "INE002A01018", "upstox+kite")
    assert "NIFTY 50" not in merged  # an index, not an equity


def test_merge_takes_the_coarser_of_two_broker_ticks() -> None:
    upstox = [BrokerInstrument("ABC", "INE1", tick_size=0.05, exchange_token="7", source="upstox")]
    kite = [BrokerInstrument("ABC", "", tick_size=0.10, kite_token=1792, exchange_token="7", source="kite"),
            BrokerInstrument("ONLYKITE", "", tick_size=0.01, kite_token=99, exchange_token="8", source="kite")]
    merged = {r.symbol: r for r in merge_broker_masters(upstox, kite)}
    assert merged["ABC"].tick_size == 0.10 and merged["ABC"].kite_token == 1792
    assert merged["ONLYKITE"].isin == "" and merged["ONLYKITE"].source == "kite"


# ---------------------------------------------------------------- renames, ISIN changes, cross-check


def test_rename_and_isin_change_are_detected() -> None:
    previous = _table(_row("OLDNAME", "INE111A01011", token="11"), _row("SPLITCO", "INE222A01011", token="22"),
                      _row("GONE", "INE333A01011", token="33"))
    broker = [BrokerInstrument("NEWNAME", "INE111A01011", tick_size=0.05, instrument_key="NSE_EQ|INE111A01011",
                               source="upstox"),
              BrokerInstrument("SPLITCO", "INE222A01029", tick_size=0.01, instrument_key="NSE_EQ|INE222A01029",
                               source="upstox")]
    refresh = refresh_table(previous, broker, {"SPLITCO": 120.0}, SEPTEMBER, source="shipped")
    assert refresh.renames == [{"old_symbol": "OLDNAME", "new_symbol": "NEWNAME", "isin": "INE111A01011"}]
    assert refresh.isin_changes == [{"symbol": "SPLITCO", "old_isin": "INE222A01011", "new_isin": "INE222A01029",
                                     "old_instrument_key": "NSE_EQ|INE222A01011",
                                     "new_instrument_key": "NSE_EQ|INE222A01029"}]
    assert refresh.not_in_master == ["GONE"]
    rows = refresh.table.set_index("symbol")
    assert rows.loc["SPLITCO", "instrument_key"] == "NSE_EQ|INE222A01029" and rows.loc["SPLITCO", "tick_size"] == 0.01
    assert rows.loc["NEWNAME", "isin"] == "INE111A01011" and "OLDNAME" not in rows.index


def test_broker_tick_disagreeing_with_the_band_rule_is_reported_and_the_coarser_used() -> None:
    previous = _table(_row("ABC", "INE1"), _row("XYZ", "INE2"))
    broker = [BrokerInstrument("ABC", "INE1", tick_size=0.05, source="upstox"),  # 1,380: band says 0.10
              BrokerInstrument("XYZ", "INE2", tick_size=0.10, source="upstox")]  # 300: band says 0.05
    refresh = refresh_table(previous, broker, {"ABC": 1380.0, "XYZ": 300.0}, SEPTEMBER, source="shipped")
    assert [(d["symbol"], d["broker_tick"], d["band_tick"], d["tick_size"]) for d in refresh.tick_disagreements] == [
        ("ABC", 0.05, 0.10, 0.10), ("XYZ", 0.10, 0.05, 0.10)]
    assert refresh.table["tick_size"].tolist() == [0.10, 0.10]
    assert "2 broker tick(s) disagree" in refresh.warnings[0]
    assert refresh.result()["tick_disagreements"] == refresh.tick_disagreements


def test_changes_are_carried_to_open_positions_gtts_and_the_bar_store(tmp_path: Path) -> None:
    db = init_db("sqlite://")
    now = datetime(2025, 9, 30, 3, 0, tzinfo=UTC)
    with session_scope(db) as session:
        session.add(PositionRow(instrument_key="NSE_EQ|INE222A01011", symbol="SPLITCO", quantity=10,
                                average_price=100.0, stop=95.0, target=110.0, opened_at=now,
                                entry_client_order_id="e1"))
        session.add(PositionRow(instrument_key="NSE_EQ|INE111A01011", symbol="OLDNAME", quantity=5,
                                average_price=50.0, stop=45.0, target=60.0, opened_at=now, entry_client_order_id="e2"))
        session.add(GttRow(exit_id="g1", broker="paper", tag="t", instrument_key="NSE_EQ|INE222A01011", quantity=10,
                           stop_trigger=95.0, stop_limit=94.5, target_trigger=110.0, target_limit=109.4,
                           created_at=now, updated_at=now))
    store = BarStore(tmp_path / "bars")
    _daily(store, "OLDNAME", date(2025, 9, 29), 50.0)
    previous = _table(_row("OLDNAME", "INE111A01011"), _row("SPLITCO", "INE222A01011"))
    broker = [BrokerInstrument("NEWNAME", "INE111A01011", source="upstox"),
              BrokerInstrument("SPLITCO", "INE222A01029", source="upstox")]
    refresh = refresh_table(previous, broker, {}, SEPTEMBER, source="shipped")
    carried = carry_changes(db, tmp_path / "bars", refresh)
    assert (carried["positions"], carried["gtts"]) == (2, 1)
    assert carried["bar_folders"] == ["timeframe=1d/symbol=OLDNAME -> symbol=NEWNAME"]
    assert len(store.read("NEWNAME", Timeframe.DAY)) == 1 and not store.has("OLDNAME", Timeframe.DAY)
    with session_scope(db) as session:
        positions = {p.entry_client_order_id: (p.symbol, p.instrument_key) for p in session.exec(select(PositionRow))}
        gtt = session.exec(select(GttRow)).one()
    assert positions == {"e1": ("SPLITCO", "NSE_EQ|INE222A01029"), "e2": ("NEWNAME", "NSE_EQ|INE111A01011")}
    assert gtt.instrument_key == "NSE_EQ|INE222A01029"
    assert carry_changes(db, tmp_path / "bars", refresh)["positions"] == 0  # idempotent


def test_instrument_json_keeps_the_interface_names() -> None:
    refresh = refresh_table(_table(_row("ABC", "INE1", kite=1792)), None, {"ABC": 1380.0}, SEPTEMBER,
                            source="shipped")
    payload = instrument_json(refresh.table.iloc[0])
    assert payload == {"symbol": "ABC", "isin": "INE1", "instrument_key": "NSE_EQ|INE1", "tick_size": 0.1,
                       "lot_size": 1, "kite_token": 1792, "exchange_token": "1", "name": "Abc", "source": "shipped",
                       "as_of": "2025-09-30", "broker_tick": None, "band_tick": 0.1}


# ---------------------------------------------------------------- the pre-open against loopback brokers


@pytest.fixture
def loopback_masters(tmp_path: Path) -> Iterator[tuple[KiteInstrumentsServer, UpstoxMasterServer]]:
    """Kite's GET /instruments/NSE (CSV) and Upstox's NSE.json.gz, each on its own loopback server."""
    kite_rows = ["instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,"
                 "instrument_type,segment,exchange",
                 "738561,2885,RELIANCE,RELIANCE INDUSTRIES,0.0,,0.0,0.1,1,EQ,NSE,NSE",
                 "884737,3456,TMPV,TATA MOTORS PV,0.0,,0.0,0.05,1,EQ,NSE,NSE",
                 "256265,1001,NIFTY 50,NIFTY 50,0.0,,0.0,0.0,0,EQ,INDICES,NSE"]
    upstox_rows = [
        {"segment": "NSE_EQ", "instrument_type": "EQ", "trading_symbol": "RELIANCE", "isin": "INE002A01018",
         "instrument_key": "NSE_EQ|INE002A01018", "exchange_token": "2885", "tick_size": 10.0, "lot_size": 1,
         "name": "RELIANCE INDUSTRIES LTD"},
        {"segment": "NSE_EQ", "instrument_type": "EQ", "trading_symbol": "TMPV", "isin": "INE155A01022",
         "instrument_key": "NSE_EQ|INE155A01022", "exchange_token": "3456", "tick_size": 5.0, "lot_size": 1,
         "name": "TATA MOTORS PASSENGER VEHICLES"},
        {"segment": "NSE_EQ", "instrument_type": "EQ", "trading_symbol": "INFY", "isin": "INE009A01029",
         "instrument_key": "NSE_EQ|INE009A01029", "exchange_token": "1594", "tick_size": 10.0, "lot_size": 1,
         "name": "INFOSYS"},
    ]
    with KiteInstrumentsServer("\n".join(kite_rows) + "\n", api_key="k", access_token="t") as kite, \
            UpstoxMasterServer(gzip.compress(json.dumps(upstox_rows).encode())) as upstox:
        yield kite, upstox


def _point_at(servers: tuple[KiteInstrumentsServer, UpstoxMasterServer], monkeypatch: pytest.MonkeyPatch) -> None:
    kite, upstox = servers
    monkeypatch.setenv("KITE_API_KEY", "k")
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "t")
    monkeypatch.setenv("KITE_ROOT_URL", kite.url)
    monkeypatch.setenv("AUTOTRADER_INSTRUMENTS__UPSTOX_MASTER_URL", upstox.url + MASTER_PATH)


def test_live_pre_open_reads_both_brokers_and_carries_a_rename(
    tmp_path: Path, loopback_masters: tuple[KiteInstrumentsServer, UpstoxMasterServer],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at(loopback_masters, monkeypatch)
    monkeypatch.setenv("AUTOTRADER_FEED__SOURCE", "upstox")  # a live day
    data = tmp_path / "data"
    write_instrument_table(_table(_row("RELIANCE", "INE002A01018", token="2885"),
                                  _row("TATAMOTORS", "INE155A01022", token="3456")), data)
    store = BarStore(data / "bars")
    _daily(store, "RELIANCE", date(2025, 9, 29), 1380.0)
    _daily(store, "TATAMOTORS", date(2025, 9, 29), 680.0)
    context = open_trading_day(SEPTEMBER, LiveClock(), database_url=f"sqlite:///{tmp_path / 'live.db'}",
                               data_dir=data, broker="zerodha")
    result = day_work.refresh_instrument_master(context)
    assert result["sources"] == {"upstox": "3 equities", "kite": "2 equities"}
    assert result["renames"] == [{"old_symbol": "TATAMOTORS", "new_symbol": "TMPV", "isin": "INE155A01022"}]
    assert result["tick_disagreements"] == []
    assert result["carried"]["bar_folders"] == ["timeframe=1d/symbol=TATAMOTORS -> symbol=TMPV"]
    traded = {i.symbol: i for i in day_work.day_instruments(context)}
    assert (traded["RELIANCE"].tick_size, traded["RELIANCE"].kite_token) == (0.10, 738561)
    assert traded["TMPV"].kite_token == 884737 and traded["TMPV"].instrument_key == "NSE_EQ|INE155A01022"
    assert day_work.refresh_instrument_master(context)["renames"] == []  # a re-run finds nothing new
    journal = (day_work.work_dir(context) / "instruments" / "changes.jsonl").read_text().splitlines()
    assert [json.loads(line)["new_symbol"] for line in journal] == ["TMPV"]


def test_a_replayed_day_with_a_real_broker_adapter_reads_no_master(
    tmp_path: Path, loopback_masters: tuple[KiteInstrumentsServer, UpstoxMasterServer],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at(loopback_masters, monkeypatch)
    data = tmp_path / "data"
    write_instrument_table(_table(_row("RELIANCE", "INE002A01018", token="2885")), data)
    context = open_trading_day(SEPTEMBER, LiveClock(), database_url=f"sqlite:///{tmp_path / 'r.db'}",
                               data_dir=data, broker="zerodha")  # feed.source: replay
    assert day_work.refresh_instrument_master(context)["sources"]["broker"].startswith("not read: replayed day")
    assert [server.requests for server in loopback_masters] == [0, 0]


def test_unreachable_brokers_fall_back_to_the_band_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AUTOTRADER_INSTRUMENTS__UPSTOX_MASTER_URL", f"http://127.0.0.1:{port}/NSE.json.gz")
    monkeypatch.setenv("AUTOTRADER_INSTRUMENTS__FETCH_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("AUTOTRADER_FEED__SOURCE", "upstox")
    monkeypatch.delenv("KITE_API_KEY", raising=False)
    monkeypatch.delenv("KITE_ACCESS_TOKEN", raising=False)
    data = tmp_path / "data"
    write_instrument_table(_table(_row("DEAR", "INE000C01011")), data)
    _daily(BarStore(data / "bars"), "DEAR", date(2025, 9, 29), 1380.0)
    context = open_trading_day(SEPTEMBER, LiveClock(), database_url=f"sqlite:///{tmp_path / 'x.db'}",
                               data_dir=data, broker="upstox")
    result = day_work.refresh_instrument_master(context)
    assert result["sources"]["upstox"].startswith("failed: TemporaryBrokerError")
    assert result["sources"]["kite"] == "not read: KITE_API_KEY / KITE_ACCESS_TOKEN not set"
    assert any("no broker master" in warning for warning in result["warnings"])
    assert [i.tick_size for i in day_work.day_instruments(context)] == [0.10]


def test_september_2025_closes_put_33_of_the_48_default_instruments_off_grid_until_refreshed() -> None:
    """What was seen: the shipped January-2025 ticks at the real 2025-09-30 closes."""
    from engine.data.instruments import filter_universe, load_instrument_table
    from engine.data.ticks import paise, tick_for_price
    from engine.settings import load_settings

    settings = load_settings()
    shipped = load_instrument_table(PROJECT_ROOT / "data")
    universe = filter_universe(shipped, settings.universe.min_market_cap_cr, settings.universe.max_instruments,
                               settings.universe.require_complete_history)
    closes = {row.symbol: float(row.close) for row in pd.read_csv(SEPTEMBER_CLOSES).itertuples()}
    assert len(universe) == 48 and set(universe["symbol"]) <= set(closes)

    def off_grid(table: pd.DataFrame) -> list[str]:
        rows = table.set_index("symbol")
        return [s for s in universe["symbol"]
                if paise(float(rows.loc[s, "tick_size"])) % paise(tick_for_price(closes[s], SEPTEMBER)) != 0]

    shipped_rows = shipped.set_index("symbol")
    wrong = [s for s in universe["symbol"]
             if paise(float(shipped_rows.loc[s, "tick_size"])) != paise(tick_for_price(closes[s], SEPTEMBER))]
    assert len(wrong) == 33  # 32 of them too fine, so their prices would be rejected
    assert len(off_grid(shipped)) == 32
    broker = merge_broker_masters(upstox_instruments(upstox_master_rows()),
                                  kite_instruments(kite_master_rows()))
    refreshed = refresh_table(shipped, broker, closes, SEPTEMBER, source="shipped")
    assert off_grid(refreshed.table) == []
    assert refreshed.renames == [{"old_symbol": "GMRINFRA", "new_symbol": "GMRAIRPORT", "isin": "INE776C01039"}]


@pytest.mark.parametrize(("body", "why"), [(b"\x1f\x8b\x08garbage", "not gzipped JSON"),
                                           (gzip.compress(b'{"a": 1}'), "expected a JSON array")])
def test_a_malformed_upstox_master_is_a_clear_error(body: bytes, why: str) -> None:
    from engine.brokers.upstox.instruments import MasterFormatError, decode_upstox_master

    with pytest.raises(MasterFormatError, match=why):
        decode_upstox_master(body, "http://127.0.0.1:1/NSE.json.gz")


def test_a_malformed_upstox_row_keeps_the_band_rule_tick() -> None:
    rows = upstox_instruments([{"segment": "NSE_EQ", "instrument_type": "EQ", "trading_symbol": "ABC", "isin": "INE1",
                                "tick_size": "n/a", "lot_size": None},
                               {"segment": "NSE_EQ", "instrument_type": "EQ", "trading_symbol": "", "isin": "INE2"}])
    assert [(r.symbol, r.tick_size, r.lot_size) for r in rows] == [("ABC", None, None)]
    refresh = refresh_table(_table(_row("ABC", "INE1")), rows, {"ABC": 1380.0}, SEPTEMBER, source="shipped")
    assert refresh.table["tick_size"].tolist() == [0.10] and refresh.table["lot_size"].tolist() == [1]


def test_a_rejected_kite_token_is_reported_without_the_token(
    tmp_path: Path, loopback_masters: tuple[KiteInstrumentsServer, UpstoxMasterServer],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    _point_at(loopback_masters, monkeypatch)
    monkeypatch.setenv("KITE_ACCESS_TOKEN", "stale-token-9f8e7d")
    monkeypatch.setenv("AUTOTRADER_FEED__SOURCE", "upstox")
    data = tmp_path / "data"
    write_instrument_table(_table(_row("RELIANCE", "INE002A01018", token="2885")), data)
    context = open_trading_day(SEPTEMBER, LiveClock(), database_url=f"sqlite:///{tmp_path / 'k.db'}", data_dir=data)
    result = day_work.refresh_instrument_master(context)
    assert result["sources"]["kite"].startswith("failed: TokenExpired")
    assert result["sources"]["upstox"] == "3 equities"  # the other master still counts
    assert "stale-token-9f8e7d" not in json.dumps(result)
