"""Fixtures for the feed tests: a small bar store + instrument table, and the Upstox-compatible replay server.

`replay_server` binds 127.0.0.1:0 and yields a started `engine.feed.replay.ReplayServer` replaying
`REPLAY_DAY` of the fixture store for `REPLAY_KEYS` (token `REPLAY_TOKEN`, speed 100, clock from 09:14:30).
`make_replay_server(**kwargs)` builds others (faults, speed, start, token, frames, …); all are stopped at teardown,
and none may leave a task pending."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine.feed.replay import ReplayServer
from engine.models import IST
from engine.storage.bars import BarStore

REPLAY_DAY = date(2024, 6, 4)
PREVIOUS_DAY = date(2024, 6, 3)
REPLAY_SYMBOLS = ("ALPHA", "BETA", "GAMMA")
REPLAY_KEYS = tuple(f"NSE_EQ|INE{i:03d}X01011" for i in range(len(REPLAY_SYMBOLS)))
REPLAY_TOKEN = "replay-token"
REPLAY_START = time(9, 14, 30)


def fixture_bars(symbol_index: int, day: date, seed: int = 7) -> pd.DataFrame:
    """75 consistent 5-minute bars (09:15..15:25) on the 0.05 grid, a deterministic random walk."""
    rng = random.Random(f"{seed}-{symbol_index}-{day}")
    price = 100.0 * (symbol_index + 1)
    rows = []
    start = datetime.combine(day, time(9, 15), IST)
    for i in range(75):
        open_ = price
        close = round(max(1.0, open_ + rng.choice([-1, 1]) * rng.randint(0, 40) * 0.05), 2)
        high = round(max(open_, close) + rng.randint(0, 10) * 0.05, 2)
        low = round(min(open_, close) - rng.randint(0, 10) * 0.05, 2)
        rows.append((start + timedelta(minutes=5 * i), open_, high, low, close, rng.randint(0, 50_000)))
        price = close
    return pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])


def write_replay_fixture(data_dir: Path) -> Path:
    """Bars of PREVIOUS_DAY and REPLAY_DAY for REPLAY_SYMBOLS, and data_dir/instruments.parquet."""
    store = BarStore(data_dir / "bars")
    for index, symbol in enumerate(REPLAY_SYMBOLS):
        for day in (PREVIOUS_DAY, REPLAY_DAY):
            store.write(symbol, "5min", fixture_bars(index, day))
    table = pd.DataFrame(
        {
            "instrument_key": list(REPLAY_KEYS),
            "symbol": list(REPLAY_SYMBOLS),
            "isin": [key.split("|")[1] for key in REPLAY_KEYS],
            "name": list(REPLAY_SYMBOLS),
            "tick_size": [0.05] * len(REPLAY_KEYS),
            "lot_size": [1] * len(REPLAY_KEYS),
            "kite_token": pd.array([None] * len(REPLAY_KEYS), dtype="Int64"),
        }
    )
    table.to_parquet(data_dir / "instruments.parquet", index=False)
    return data_dir


@pytest.fixture(scope="session")
def replay_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_replay_fixture(tmp_path_factory.mktemp("replay-data"))


MakeReplayServer = Callable[..., Awaitable[ReplayServer]]


@pytest.fixture
async def make_replay_server(replay_data_dir: Path) -> AsyncIterator[MakeReplayServer]:
    servers: list[ReplayServer] = []

    async def make(**kwargs: Any) -> ReplayServer:
        if "frames" not in kwargs:
            kwargs.setdefault("data_dir", replay_data_dir)
            kwargs.setdefault("day", REPLAY_DAY)
            kwargs.setdefault("start", REPLAY_START)
        kwargs.setdefault("token", REPLAY_TOKEN)
        kwargs.setdefault("speed", 100.0)
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        server = ReplayServer(**kwargs)
        servers.append(server)
        await server.start()
        return server

    yield make
    for server in servers:
        await server.stop()
    assert all(not server.tasks for server in servers), "a replay server left a task pending after stop()"


@pytest.fixture
async def replay_server(make_replay_server: MakeReplayServer) -> ReplayServer:
    return await make_replay_server()
