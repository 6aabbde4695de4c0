"""Database URLs for the storage tests: a SQLite file, and a throwaway PostgreSQL cluster when Debian's
server binaries are installed (`make system-deps`), started on a free 127.0.0.1 port and stopped after."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.storage import init_db
from engine.storage.memory import Database, MemoryDatabase


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_cluster_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the `postgres` system user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        pytest.skip("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin/initdb); run make system-deps")
    bin_dir = Path(binaries[-1]).parent
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is unavailable")
    root = Path(tempfile.mkdtemp(prefix="autotrader-pg-"))
    if os.geteuid() == 0:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log = root / "data", root / "server.log"
    port = _free_port()
    subprocess.run(
        _as_cluster_user([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "autotrader", "-E", "UTF8"]),
        check=True, capture_output=True, timeout=120,
    )
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off"
    subprocess.run(
        _as_cluster_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
        check=True, capture_output=True, timeout=120,
    )
    try:
        subprocess.run(
            _as_cluster_user([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "autotrader",
                              "autotrader"]),
            check=True, capture_output=True, timeout=60,
        )
        yield f"postgresql://autotrader@127.0.0.1:{port}/autotrader"
    finally:
        subprocess.run(
            _as_cluster_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True, timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same storage tests run on a SQLite file and on PostgreSQL (fresh schema each test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'autotrader.db'}"
        return
    url: str = request.getfixturevalue("postgres_url")
    from sqlalchemy import text

    from engine.storage.db import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    yield url


@pytest.fixture(params=["sql", "memory"])
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """Each repository's contract runs on both stores: SQL (SQLite in memory) and a MemoryDatabase."""
    if request.param == "memory":
        yield MemoryDatabase()
        return
    engine = init_db("sqlite://")
    yield engine
    engine.dispose()
