"""Top-level fixtures shared by every test package (keep this small: area fixtures live in sub-conftests)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.demos.kill_day import KillDay, run_kill_day

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DATA_DIR = PROJECT_ROOT / "data"


@pytest.fixture(scope="session")
def shipped_data_dir() -> Path:
    """The shipped `data/` folder (bars + instruments.parquet); skips if it was not built."""
    if not (SHIPPED_DATA_DIR / "instruments.parquet").exists():
        pytest.skip("data/ is not built: run `autotrader data build`")
    return SHIPPED_DATA_DIR


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """ONE temporary Prefect API for every test that runs flows in-process: a second harness in the same
    run would leave Prefect's process-wide event worker talking to a server that is gone."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def kill_day(tmp_path_factory: pytest.TempPathFactory) -> KillDay:
    """The replayed kill-switch demo of tests/demos/kill_day.py, run once per test session."""
    return run_kill_day(tmp_path_factory.mktemp("kill-day"))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Puts the logging set-up back (record factory, root handlers and level) after a test that ran a CLI command."""
    factory, root = logging.getLogRecordFactory(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.setLogRecordFactory(factory)
    root.handlers[:] = handlers
    root.setLevel(level)
