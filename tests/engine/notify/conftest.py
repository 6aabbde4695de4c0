"""Fixtures for the notification tests: an empty database and a loopback webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.storage import init_db
from tests.engine.notify.receiver import Receiver, loopback_receiver


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = init_db(f"sqlite:///{tmp_path / 'notify.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_receiver() as running:
        yield running
