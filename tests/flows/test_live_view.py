"""The live view without a server: `live_view` publishes every minute of the session clock (throttled by
wall time, always once more at the close) and shrugs off a failing or hanging publisher; and on Prefect's
test harness `LiveViewPublisher` updates the progress artifact in place and versions the keyed tables."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

import tasks.live
from engine.secrets import register_secret
from engine.session.view import POSITION_COLUMNS, SETUP_COLUMNS, SessionView
from tasks.artifacts import LiveViewPublisher
from tasks.live import live_view
from tests.engine.strategy.support import at
from tests.engine.test_trader import DAY, make_rig


@dataclass
class Recorder:
    views: list[SessionView] = field(default_factory=list)
    error: Exception | None = None
    hang: bool = False

    async def publish(self, view: SessionView) -> None:
        if self.hang:
            await asyncio.sleep(3600)
        if self.error is not None:
            raise self.error
        self.views.append(view)


def _session(tmp_path: Path, start: datetime) -> Any:
    """What `live_view` reads of a LiveSession, around a real engine on a stepped clock."""
    rig = make_rig(tmp_path)
    rig.clock.set(start)
    return SimpleNamespace(context=SimpleNamespace(day=DAY), clock=rig.clock, engine=rig.engine(),
                           streaming_done=asyncio.Event(), stats=SimpleNamespace(ticks=0))


async def _run_until(session: Any, close: datetime, publisher: Recorder) -> dict[str, int]:
    """`live_view` while the stepped clock runs to `close`, where streaming ends."""

    async def stream() -> None:
        while session.clock.now() < close:
            await asyncio.sleep(0)
        session.streaming_done.set()

    counts, _ = await asyncio.wait_for(asyncio.gather(live_view(session, publisher), stream()), 10)
    return counts


async def test_the_view_is_published_every_session_minute_and_once_more_at_the_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks.live, "LIVE_VIEW_MIN_WALL_SECONDS", 0.0)
    session = _session(tmp_path, at(DAY, 9, 15, 30))
    recorder = Recorder()
    counts = await _run_until(session, at(DAY, 9, 20), recorder)
    minutes = [at(DAY, 9, 15, 30)] + [at(DAY, 9, 16) + timedelta(minutes=i) for i in range(5)]
    assert [v.at for v in recorder.views] == minutes  # the last, 09:20, is the final one at the close
    assert [v.progress_pct for v in recorder.views[:2]] == [0.13, 0.27]  # of the 375 minutes of 09:15-15:30
    assert counts == {"published": len(minutes), "failed": 0}


async def test_a_fast_replay_publishes_at_most_every_two_wall_seconds_and_always_the_final_view(
    tmp_path: Path,
) -> None:
    session = _session(tmp_path, at(DAY, 9, 15))
    recorder = Recorder()
    counts = await _run_until(session, at(DAY, 15, 30), recorder)  # a whole day in a few wall milliseconds
    assert counts == {"published": 2, "failed": 0}
    assert [(v.at, v.progress_pct) for v in recorder.views] == [(at(DAY, 9, 15), 0.0), (at(DAY, 15, 30), 100.0)]


async def test_a_failing_publisher_is_logged_without_its_secret_and_never_stops_the_view(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    register_secret("view-secret-123456")
    session = _session(tmp_path, at(DAY, 15, 0))
    with caplog.at_level(logging.WARNING, logger="tasks.live"):
        counts = await _run_until(session, at(DAY, 15, 30),
                                  Recorder(error=RuntimeError("API refused token view-secret-123456")))
    assert counts == {"published": 0, "failed": 2}
    messages = [r.getMessage() for r in caplog.records if r.name == "tasks.live"]
    assert messages == ["live view not published: RuntimeError: API refused token ***"] * 2


async def test_a_hanging_publisher_times_out_and_the_view_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks.live, "LIVE_VIEW_PUBLISH_TIMEOUT_SECONDS", 0.05)
    session = _session(tmp_path, at(DAY, 15, 0))
    counts = await _run_until(session, at(DAY, 15, 30), Recorder(hang=True))
    assert counts == {"published": 0, "failed": 2}


def _view(minute: int, ltp: float) -> SessionView:
    row = {"symbol": "RELIANCE", "qty": 10, "avg": 100.0, "ltp": ltp, "unrealised": round(10 * (ltp - 100.0), 2),
           "stop": 95.0, "target": 110.0, "exit_status": "protected by GTT G1"}
    return SessionView(at=at(DAY, 10, minute), progress_pct=minute * 2.0, positions=[row], setups=[],
                       realised_pnl=-12.5, unrealised_pnl=row["unrealised"], open_positions=1, closed_trades=1,
                       kill_switch=True, kill_reason="max daily loss 5000.00 reached")


async def test_the_progress_updates_in_place_and_the_tables_get_new_versions_of_their_keys(
    prefect_harness: None,
) -> None:
    day = date(2024, 6, 7)  # a day no other test of this harness publishes

    @flow
    async def publish_twice() -> str:
        from prefect.runtime import flow_run

        publisher = LiveViewPublisher(day)
        await publisher.publish(_view(1, 101.0))
        await publisher.publish(_view(2, 102.5))
        return str(flow_run.id)

    run_id = await publish_twice()
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    by_key: dict[str, list[Any]] = {}
    for artifact in sorted(artifacts, key=lambda a: a.created):
        by_key.setdefault(str(artifact.key), []).append(artifact)
    keys = {name: f"live-{name}-{day}" for name in ("progress", "positions", "setups", "pnl")}
    assert set(by_key) == set(keys.values())
    [progress] = by_key[keys["progress"]]  # one artifact, updated in place
    assert (progress.type, progress.data) == ("progress", 4.0)
    assert progress.description == "trading session 4.0 % elapsed at 10:02 IST"
    positions = [json.loads(str(a.data)) for a in by_key[keys["positions"]]]
    assert [[row["ltp"] for row in table] for table in positions] == [[101.0], [102.5]]
    assert list(positions[-1][0]) == list(POSITION_COLUMNS)
    assert json.loads(str(by_key[keys["setups"]][-1].data)) == [dict.fromkeys(SETUP_COLUMNS, "")]  # none found yet
    pnl = str(by_key[keys["pnl"]][-1].data)
    assert "realised net P&L: **₹-12.50** (1 closed trades)" in pnl
    assert "kill switch: **ON**: max daily loss 5000.00 reached" in pnl
