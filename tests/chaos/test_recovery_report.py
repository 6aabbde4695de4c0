"""The recovery figures as reported: the live session's Prefect artifact (tasks/recovery.py) and the demo's
`--chaos` JSON (per day and over the days), and the rule `make chaos` judges a chaos run by."""

from __future__ import annotations

from typing import Any

from cli.demo_cmd import chaos_report
from tasks.recovery import recovery_markdown
from tests.chaos.demos import verdict


def _figures(count: int, mean: float, maximum: float, minutes: int) -> dict[str, float | int]:
    return {"count": count, "session_seconds_mean": mean, "session_seconds_max": maximum,
            "wall_seconds_mean": 0.002, "wall_seconds_max": 0.004, "minutes_backfilled": minutes}


STALE_NOTE = "the entry window ran at 15:12 while the feed was down: its decisions saw stale prices"
STREAMS: dict[str, dict[str, Any]] = {
    "2024-06-03": {"reconnects": 3, "faults_injected": {"drop": 2, "stall": 1},
                   "recovery": {"drop": _figures(2, 40.0, 50.0, 1), "stall": _figures(1, 330.0, 330.0, 6)},
                   "feed_notes": []},
    "2024-06-04": {"reconnects": 1, "faults_injected": {"drop": 1, "malformed": 1},
                   "recovery": {"drop": _figures(1, 10.0, 10.0, 0)},
                   "feed_notes": [STALE_NOTE]},
}


def test_the_artifact_is_a_table_per_fault_kind_with_the_notes() -> None:
    markdown = recovery_markdown("2024-06-04", STREAMS["2024-06-04"])
    assert "- reconnects: **1**" in markdown
    assert "- faults injected (chaos replay): drop 1, malformed 1" in markdown
    assert "| drop | 1 | 10.0 / 10.0 | 2.0 / 4.0 | 0 |" in markdown
    assert markdown.endswith(f"- {STALE_NOTE}")
    quiet = recovery_markdown("2024-06-05", {"reconnects": 0})
    assert "| none | 0 |" in quiet and "faults injected" not in quiet and "shielded" not in quiet


def test_the_demo_json_has_each_days_figures_and_their_totals() -> None:
    days: list[dict[str, Any]] = [{"day": "2024-06-03"}, {"day": "2024-06-04"}, {"day": "2024-06-05"}]
    report = chaos_report(days, STREAMS, 50, 7)
    assert days[0]["faults_injected"] == {"drop": 2, "stall": 1} and days[0]["reconnects"] == 3
    assert days[2] == {"day": "2024-06-05", "faults_injected": {}, "reconnects": 0, "recovery": {}, "feed_notes": []}
    assert report["faults_per_day"] == 50 and report["seed"] == 7
    assert report["faults_injected"] == {"drop": 3, "malformed": 1, "stall": 1}
    assert report["reconnects"] == 4
    drop = report["recovery"]["drop"]
    assert drop["count"] == 3 and drop["session_seconds_mean"] == 30.0  # (2 × 40 + 1 × 10) / 3
    assert drop["session_seconds_max"] == 50.0 and drop["minutes_backfilled"] == 1
    assert report["recovery"]["stall"]["minutes_backfilled"] == 6
    assert report["notes"] == [f"2024-06-04: {STALE_NOTE}"]


def _summary(trades: list[tuple[str, str]], notes_by_day: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "trades": [{"day": day, "symbol": symbol, "quantity": 10, "entry_price": 100.0, "exit_price": 103.0,
                    "exit_reason": "target"} for day, symbol in trades],
        "open_positions": [], "states": {},
        "days": [{"day": day, "feed_notes": notes} for day, notes in notes_by_day.items()],
        "chaos": {"notes": [note for notes in notes_by_day.values() for note in notes]},
    }


def test_make_chaos_allows_a_difference_only_from_the_first_day_with_an_outage_note() -> None:
    clean = _summary([("2024-06-03", "SBIN"), ("2024-06-04", "INFY")], {})
    same = _summary([("2024-06-03", "SBIN"), ("2024-06-04", "INFY")], {"2024-06-03": [], "2024-06-04": []})
    assert verdict(clean, same)[0]
    quiet_but_different = _summary([("2024-06-03", "SBIN")], {"2024-06-03": [], "2024-06-04": []})
    assert not verdict(clean, quiet_but_different)[0]
    noted_on_the_day = _summary([("2024-06-03", "SBIN")], {"2024-06-03": [], "2024-06-04": [STALE_NOTE]})
    assert verdict(clean, noted_on_the_day)[0]
    different_before_the_note = _summary([("2024-06-04", "INFY")], {"2024-06-03": [], "2024-06-04": [STALE_NOTE]})
    passed, why = verdict(clean, different_before_the_note)
    assert not passed and "before 2024-06-04" in why
