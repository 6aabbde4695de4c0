"""`make chaos`: replayed days under feed faults trade exactly like the clean days, through `autotrader demo --json`.

For each venue, one clean run and one `--chaos N --seed S` run per seed, side by side (`--parallel` at a time), each
with its own database and Prefect home. A chaos run passes when its trades (day, symbol, quantity, entry and exit
prices, reason) and open positions equal the clean run's of the venue. The rule where they do not: a day whose
run reported an outage the trading could not be shielded from (`feed_notes`: the entry window ran while the feed was
down, or the close came before the feed recovered) may change the trades from that day on, never those of an
earlier day. Prints the recovery figures per fault kind.

    python -m tests.chaos.demos --from 2024-06-03 --to 2024-06-05 --faults 50 --seeds 1 2 3 \
        --venues paper zerodha-sandbox

`run_demos` and `outcome` also serve tests/engine/sim/test_venues_agree.py (the venues compared on clean runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_SECONDS = 1800


@dataclass(frozen=True)
class DemoRun:
    venue: str
    seed: int | None  # None: the clean run
    faults: int = 0

    @property
    def name(self) -> str:
        return f"{self.venue} clean" if self.seed is None else f"{self.venue} chaos {self.faults} seed {self.seed}"


def run_demo(run: DemoRun, first: str, last: str, work: Path) -> dict[str, Any]:
    """`autotrader demo --json` for `run` in a subprocess; its JSON summary."""
    label = run.name.replace(" ", "-")
    environment = {**os.environ, "AUTOTRADER_BROKER": run.venue,
                   "AUTOTRADER_DATABASE_URL": f"sqlite:///{work / label}.db", "PREFECT_HOME": str(work / label)}
    command = [sys.executable, "-m", "cli.main", "demo", "--from", first, "--to", last, "--json"]
    if run.seed is not None:
        command += ["--chaos", str(run.faults), "--seed", str(run.seed)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=environment, text=True, capture_output=True,
                          timeout=DEMO_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        days = [line for line in done.stderr.splitlines() if line.startswith("  20")]  # "  2024-06-03: Failed — …"
        raise RuntimeError(f"{run.name}: the demo failed ({done.returncode}): {days} {done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(done.stdout)  # JSON alone on stdout
    return summary


def run_demos(runs: list[DemoRun], first: str, last: str, parallel: int) -> dict[DemoRun, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="chaos-") as work, ThreadPoolExecutor(parallel) as pool:
        futures = {run: pool.submit(run_demo, run, first, last, Path(work)) for run in runs}
        return {run: future.result() for run, future in futures.items()}


def outcome(summary: dict[str, Any]) -> dict[str, Any]:
    """What must not change under feed faults: the trades and the open positions."""
    trades = [(t["day"], t["symbol"], t["quantity"], t["entry_price"], t["exit_price"], t["exit_reason"])
              for t in summary["trades"]]
    positions = [(p["symbol"], p["quantity"], p["average_price"], p["stop"], p["target"])
                 for p in summary["open_positions"]]
    return {"trades": trades, "open_positions": positions, "states": summary["states"]}


def verdict(clean: dict[str, Any], chaos: dict[str, Any]) -> tuple[bool, str]:
    """(passed, why) of a chaos run against the clean run of its venue, by the rule of the module docstring."""
    notes = chaos["chaos"]["notes"]
    if outcome(chaos) == outcome(clean):
        return True, "same trades and open positions" + (f" despite {len(notes)} outage note(s)" if notes else "")
    noted_days = [line["day"] for line in chaos["days"] if line["feed_notes"]]
    if not noted_days:
        return False, f"differs with no outage note: clean {outcome(clean)} chaos {outcome(chaos)}"
    first = min(noted_days)
    before = [trade for trade in outcome(clean)["trades"] if trade[0] < first]
    if [trade for trade in outcome(chaos)["trades"] if trade[0] < first] != before:
        return False, f"differs before {first}, the first day with an outage note"
    return True, f"same trades before {first}; differs from that day on, where the run said: " + "; ".join(notes)


def recovery_lines(name: str, chaos: dict[str, Any]) -> list[str]:
    report = chaos["chaos"]
    lines = [f"{name}: injected {report['faults_injected']}, reconnects {report['reconnects']}"]
    for kind, figures in report["recovery"].items():
        lines.append(
            f"  {kind:<12} n={figures['count']:<4} fault → next tick: session {figures['session_seconds_mean']:7.1f} s "
            f"mean / {figures['session_seconds_max']:7.1f} s max, wall {figures['wall_seconds_mean'] * 1000:7.1f} ms "
            f"mean / {figures['wall_seconds_max'] * 1000:7.1f} ms max; "
            f"minutes backfilled {figures['minutes_backfilled']}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="first", default="2024-06-03")
    parser.add_argument("--to", dest="last", default="2024-06-05")
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--venues", nargs="+", default=["paper", "zerodha-sandbox"])
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args(argv)
    runs = [DemoRun(venue, seed, args.faults) for venue in args.venues for seed in [None, *args.seeds]]
    summaries = run_demos(runs, args.first, args.last, args.parallel)
    failed = False
    for run, summary in summaries.items():
        if run.seed is None:
            print(f"{run.name}: {len(summary['trades'])} trades, {len(summary['open_positions'])} open positions, "
                  f"{summary['seconds']} s")
            continue
        passed, why = verdict(summaries[DemoRun(run.venue, None, run.faults)], summary)
        failed |= not passed
        print(f"{'PASS' if passed else 'FAIL'} {run.name} ({summary['seconds']} s): {why}")
        print("\n".join(recovery_lines(run.name, summary)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
