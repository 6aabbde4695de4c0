"""Dependencies point one way: flows -> tasks -> engine. The engine never imports Prefect."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _engine_files() -> list[Path]:
    return [p for p in (ROOT / "engine").rglob("*.py") if "proto" not in p.relative_to(ROOT).parts[:3]]


def test_engine_never_imports_prefect_flows_tasks_or_cli() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports(p) & {"prefect", "flows", "tasks", "cli"})
        for p in _engine_files()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


# Durations for latency figures (time.perf_counter) are allowed; reading the time of day is not.
WALL_CLOCK_READS = ("datetime.now(", "date.today(", "time.time(", "time.monotonic(", "time_ns(", "monotonic_ns(")


def test_engine_never_reads_the_wall_clock() -> None:
    allowed = {ROOT / "engine" / "clock.py"}
    offenders = {
        str(p.relative_to(ROOT)): [read for read in WALL_CLOCK_READS if read in p.read_text()]
        for p in _engine_files()
        if p not in allowed
    }
    assert {path: reads for path, reads in offenders.items() if reads} == {}


def test_tasks_never_import_flows() -> None:
    offenders = [str(p) for p in (ROOT / "tasks").rglob("*.py") if "flows" in _imports(p)]
    assert offenders == []
