"""One replayed kill-switch demo shared by the tests that need such a day (a demo run costs ~40 s).

`autotrader demo --from 2024-06-03 --to 2024-06-04 --json` on the Kite sandbox (Kite's 2026 rules:
market protection, 10 orders a second) with `flatten_on_kill`, the demo's 12 instruments and a 0.1 %
daily loss limit, so that 2024-06-04 (election results) trips the kill switch with positions open; trade
notifications go to a loopback webhook that answers HTTP 500 to every other message."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.engine.notify.receiver import loopback_receiver
from tests.security.netns import isolated_environment

KILL_DAYS = ("2024-06-03", "2024-06-04")
MAX_DAILY_LOSS_PCT = "0.1"  # 2024-06-04 loses more than this on the demo's 12 instruments


@dataclass(frozen=True)
class KillDay:
    summary: dict[str, Any]  # the demo's JSON
    stderr: str
    database_url: str
    webhook_url: str
    received: list[dict[str, Any]]  # the webhook bodies, in the order they came


def run_kill_day(home: Path) -> KillDay:
    database_url = f"sqlite:///{home / 'kill-day.db'}"
    with loopback_receiver(answer=lambda number: 500 if number % 2 else 200) as receiver:
        environment = isolated_environment(home, AUTOTRADER_DATABASE_URL=database_url,
                                           AUTOTRADER_BROKER="zerodha-sandbox",
                                           AUTOTRADER_RISK__FLATTEN_ON_KILL="true",
                                           AUTOTRADER_RISK__MAX_DAILY_LOSS_PCT=MAX_DAILY_LOSS_PCT,
                                           AUTOTRADER_NOTIFY__WEBHOOK_URL=receiver.url)
        demo = subprocess.run([sys.executable, "-m", "cli.main", "demo", "--from", KILL_DAYS[0], "--to", KILL_DAYS[1],
                               "--json"], env=environment, cwd=home, capture_output=True, text=True, timeout=280)
    assert demo.returncode == 0, demo.stderr[-3000:]
    return KillDay(json.loads(demo.stdout), demo.stderr, database_url, receiver.url, list(receiver.received))
