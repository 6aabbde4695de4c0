"""`parameter-sweep` on real Dask clusters: a LocalCluster of two worker processes, and a scheduler
and worker started from the command line, as a user's cluster would be."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.research.sweep import run_combination
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.usefixtures("prefect_harness")

SYMBOLS = ["TATASTEEL", "INFY", "RELIANCE", "SBIN"]
GRID = ["risk.reward_risk=1.5,3", "risk.max_open_positions=1"]


def test_a_local_cluster_of_two_processes_runs_the_grid_like_a_direct_backtest() -> None:
    from prefect.client.orchestration import get_client

    from flows.sweep import dask_task_runner, parameter_sweep

    result = parameter_sweep.with_options(task_runner=dask_task_runner(workers=2))(
        params=GRID, start="2024-06-03", end="2024-06-14", symbols=SYMBOLS)
    assert [r["params"] for r in result["results"]] == [
        {"risk.reward_risk": "1.5", "risk.max_open_positions": "1"},
        {"risk.reward_risk": "3", "risk.max_open_positions": "1"},
    ]
    direct = run_combination(result["results"][1]["params"], "2024-06-03", "2024-06-14", SYMBOLS)
    assert result["results"][1]["summary"] == direct["summary"]  # same numbers as in this process
    assert result["results"][0]["summary"]["open_positions"] + result["results"][0]["summary"]["trades"] >= 1

    async def heatmap() -> str:
        async with get_client() as client:
            artifact = await client.read_latest_artifacts()
            return " ".join(str(a.key) for a in artifact)

    import asyncio

    assert "sweep-2024-06-03-2024-06-14-heatmap" in asyncio.run(heatmap())


@pytest.fixture()
def command_line_cluster(tmp_path: Path) -> Iterator[str]:
    """`dask scheduler` and `dask worker` as separate processes on 127.0.0.1, stopped afterwards."""
    bin_dir = Path(sys.executable).parent
    scheduler_file = tmp_path / "scheduler.json"
    log = (tmp_path / "dask.log").open("w")
    processes = [subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert re.match(r"tcp://127\.0\.0\.1:\d+$", address)
        processes.append(subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nworkers", "1",
                                           "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def test_the_cli_walks_forward_on_a_scheduler_started_from_the_command_line(command_line_cluster: str) -> None:
    from prefect.settings import get_current_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTRADER_")}
    env["PREFECT_API_URL"] = str(get_current_settings().api.url)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "autotrader"), "sweep", "--from", "2024-04-01", "--to", "2024-06-30",
         "--param", "risk.reward_risk=1.5,3", "--symbols", ",".join(SYMBOLS), "--objective", "net_pnl",
         "--walk-forward", "--in-sample-months", "1", "--out-of-sample-months", "1",
         "--dask-address", command_line_cluster, "--json"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    windows = json.loads(result.stdout)["walk_forward"]  # JSON alone on stdout: progress went to stderr
    assert [(w["in_sample_from"], w["out_of_sample_from"], w["out_of_sample_to"]) for w in windows] == [
        ("2024-04-01", "2024-05-01", "2024-05-31"), ("2024-05-01", "2024-06-01", "2024-06-30")]
    for window in windows:
        fitted = window["in_sample_results"]
        assert window["in_sample"]["net_pnl"] == max(r["summary"]["net_pnl"] for r in fitted)
        tested = run_combination(window["best_params"], window["out_of_sample_from"], window["out_of_sample_to"],
                                 SYMBOLS)
        assert window["out_of_sample"]["net_pnl"] == tested["summary"]["net_pnl"]
