"""The pre-open flow refreshes the calendar every day, closed days included, and flags a short
look-ahead with a WARNING line and a "calendar-coverage" artifact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from engine.session.day import CALENDAR_WARNING
from flows.pre_open import pre_open


@pytest.fixture(autouse=True)
def _harness(prefect_harness: None) -> Iterator[None]:
    yield


async def test_a_saturday_pre_open_is_skipped_with_its_reason_and_flags_the_short_calendar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{tmp_path / 'closed.db'}")
    monkeypatch.setenv("AUTOTRADER_FEED__SOURCE", "replay")  # no broker asked: the shipped calendar ends 2026-12-31
    state = await pre_open(day="2026-12-05", return_state=True)
    assert (state.is_completed(), state.name, state.message) == (
        True, "Skipped", "2026-12-05 is not an NSE trading day (Saturday)")
    async with get_client() as client:
        artifacts = [a for a in await client.read_artifacts() if a.key == "calendar-coverage"]
    assert artifacts and str(artifacts[-1].data).startswith(f"**{CALENDAR_WARNING}: only 26 of the 30 days")
