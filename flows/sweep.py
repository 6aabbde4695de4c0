"""Parameter sweeps and walk-forward analysis as a Prefect flow on a Dask cluster (prefect-dask's
DaskTaskRunner): one task per backtest, a local cluster by default or an existing one by address.
The logic is in engine/research/sweep.py; the flow fans out, collects and publishes a heatmap."""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_image_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture, as_completed

from engine.research import sweep
from engine.research.heatmap import heatmap_png

# Set by the CLI to draw its progress bar: called with (done, total) as backtests finish.
progress_hook: Callable[[int, int], None] | None = None


@task(name="backtest-combination", cache_policy=NO_CACHE)
def backtest_combination(combination: dict[str, str], start: str, end: str,
                         symbols: list[str] | None) -> dict[str, Any]:
    return sweep.run_combination(combination, start, end, symbols)


def dask_task_runner(address: str | None = None, workers: int | None = None) -> Any:
    """An existing cluster by address, or a local cluster of `workers` processes (one thread each)."""
    from prefect_dask import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers or 2, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})


@contextlib.contextmanager
def shared_api() -> Iterator[None]:
    """Without PREFECT_API_URL each Dask worker process would start its own ephemeral Prefect server
    (tens of seconds each): start one here and point this process and the workers at it."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield
        return
    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by the local cluster's worker processes
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        server.stop()


def _collect(futures: list[PrefectFuture[dict[str, Any]]], done: int, total: int) -> tuple[list[dict[str, Any]], int]:
    """The futures' results in submission order, reporting progress as each finishes."""
    results: dict[int, dict[str, Any]] = {}
    for future in as_completed(futures):
        results[id(future)] = future.result()
        done += 1
        if progress_hook is not None:
            progress_hook(done, total)
    return [results[id(future)] for future in futures], done


def _publish(results: list[dict[str, Any]], objective: str, title: str, key: str) -> None:
    create_table_artifact(table=[{**r["params"], **{k: r["summary"].get(k) for k in ("net_pnl", objective)}}
                                 for r in results], key=key, description=title)
    png = heatmap_png(results, objective, title)
    create_image_artifact(image_url="data:image/png;base64," + base64.b64encode(png).decode(),
                          key=f"{key}-heatmap", description=title)


def _artifact_key(start: str, end: str) -> str:
    return f"sweep-{start}-{end}"


@flow(name="parameter-sweep", flow_run_name="sweep {start} .. {end}")
def parameter_sweep(params: list[str], start: str, end: str, symbols: list[str] | None = None,
                    objective: str = "sharpe", in_sample_months: int | None = None,
                    out_of_sample_months: int | None = None) -> dict[str, Any]:
    """Backtest every combination of `params` (each `KEY=V1,V2,…`) over start..end; with in-sample and
    out-of-sample months, walk forward: fit each window's best combination, test it on the next."""
    grid = sweep.grid([sweep.parse_parameter(text) for text in params])
    logger = get_run_logger()
    if in_sample_months is None or out_of_sample_months is None:
        logger.info("sweeping %d combinations over %s .. %s", len(grid), start, end)
        futures = [backtest_combination.submit(c, start, end, symbols) for c in grid]
        results, _ = _collect(futures, 0, len(grid))
        _publish(results, objective, f"{objective} by parameters, {start} .. {end}", _artifact_key(start, end))
        return {"start": start, "end": end, "objective": objective, "results": results,
                "best": sweep.best(results, objective)["params"]}
    from datetime import date

    windows = sweep.walk_forward_windows(date.fromisoformat(start), date.fromisoformat(end), in_sample_months,
                                         out_of_sample_months)
    total = len(windows) * (len(grid) + 1)
    logger.info("walking forward over %d windows × %d combinations", len(windows), len(grid))
    fitted = [[backtest_combination.submit(c, w.in_sample[0].isoformat(), w.in_sample[1].isoformat(), symbols)
               for c in grid] for w in windows]
    done, report = 0, []
    for window, futures in zip(windows, fitted, strict=True):
        in_sample, done = _collect(futures, done, total)
        chosen = sweep.best(in_sample, objective)
        (tested,), done = _collect([backtest_combination.submit(chosen["params"], window.out_of_sample[0].isoformat(),
                                                                window.out_of_sample[1].isoformat(), symbols)],
                                   done, total)
        report.append({**window.as_dict(), "best_params": chosen["params"], "in_sample": chosen["summary"],
                       "out_of_sample": tested["summary"], "in_sample_results": in_sample})
    _publish([{"params": w["best_params"], "summary": w["out_of_sample"]} for w in report], objective,
             f"out-of-sample {objective} of each window's best, {start} .. {end}", _artifact_key(start, end))
    return {"start": start, "end": end, "objective": objective, "walk_forward": report}
