"""`autotrader demo` and the report agree (issue #15 item 5): the demo honours AUTOTRADER_DATABASE_URL
(never deleting a database you named), prints the `autotrader report` command of each day, and with
--json prints the JSON alone on stdout (checked on the shared kill-day demo, tests/demos/kill_day.py)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cli import demo_cmd
from tests.demos.kill_day import KILL_DAYS, KillDay
from tests.security.netns import clean_broker_environment, isolated_environment  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_broker_environment")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAY = "2024-06-04"


@pytest.mark.e2e
def test_demo_json_is_parseable_and_its_report_command_reads_the_given_database(tmp_path: Path,
                                                                                  kill_day: KillDay) -> None:
    summary = kill_day.summary  # parsed from stdout: the JSON alone, progress went to stderr
    assert summary["states"] == dict.fromkeys(KILL_DAYS, "Completed")
    assert summary["days"][0]["entry_orders"] > 0
    assert "▶ trading day" in kill_day.stderr and "venue: " in kill_day.stderr

    printed = [line.strip() for line in kill_day.stderr.splitlines() if "autotrader report --date" in line]
    # a database you named is yours: no prefix needed
    assert printed == [f"autotrader report --date {day}" for day in KILL_DAYS]
    environment = isolated_environment(tmp_path, AUTOTRADER_DATABASE_URL=kill_day.database_url)
    report = subprocess.run([sys.executable, "-m", "cli.main", *shlex.split(printed[0])[1:], "--json"],
                            env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    orders = json.loads(report.stdout)["orders"]
    assert len([o for o in orders if o["purpose"] == "ENTRY"]) == summary["days"][0]["entry_orders"]


def test_a_database_named_by_the_environment_is_used_and_never_deleted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo_cmd, "DEMO_DIR", tmp_path / "demo")
    (tmp_path / "demo").mkdir()
    mine = tmp_path / "demo" / "mine.db"
    mine.write_bytes(b"my trades")
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{mine}")
    assert demo_cmd._demo_database(keep=False) == (f"sqlite:///{mine}", False)
    assert mine.read_bytes() == b"my trades"


def test_the_default_demo_database_starts_fresh_unless_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    monkeypatch.setattr(demo_cmd, "DEMO_DIR", demo_dir)
    demo_dir.mkdir()
    (demo_dir / "autotrader.db").write_bytes(b"yesterday")
    assert demo_cmd._demo_database(keep=True) == (demo_cmd.DEFAULT_DATABASE_URL, True)
    assert (demo_dir / "autotrader.db").exists()
    assert demo_cmd._demo_database(keep=False) == (demo_cmd.DEFAULT_DATABASE_URL, True)
    assert demo_dir.is_dir() and not (demo_dir / "autotrader.db").exists()


def test_the_report_command_of_the_default_demo_database_names_it_so_it_works_when_pasted() -> None:
    [command] = demo_cmd.report_commands([DAY], default_database=True)
    database_url = f"sqlite:///{PROJECT_ROOT}/var/demo/autotrader.db"
    assert command == f"AUTOTRADER_DATABASE_URL={database_url} autotrader report --date {DAY}"
    assignment, *argv = shlex.split(command)
    assert assignment.split("=", 1) == ["AUTOTRADER_DATABASE_URL", demo_cmd.DEFAULT_DATABASE_URL]
    assert argv == ["autotrader", "report", "--date", DAY]
    assert demo_cmd.report_commands([DAY, "2024-06-05"], default_database=False) == [
        f"autotrader report --date {DAY}", "autotrader report --date 2024-06-05"]
