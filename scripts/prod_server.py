"""Production Prefect, locally: PostgreSQL from the OS packages holding both the Prefect server's database
(`prefect`) and the autotrader database (`autotrader`), the Prefect server on 127.0.0.1:4200 against it, the
`autotrader-process` work pool and two process workers whose flows write to the autotrader database.

    make server        # = python -m scripts.prod_server start: runs in the foreground, Ctrl-C stops it all
    make server-stop   # = python -m scripts.prod_server stop: stops one started from another terminal

Everything listens on 127.0.0.1 only. State lives in var/server/ (the cluster's data persists across restarts;
its generated password in var/server/postgres.password, mode 0600); `source var/server/env.sh` sets
PREFECT_API_URL, AUTOTRADER_DATABASE_URL and the workers' heartbeat frequency for `prefect deploy --all`,
`make automations` and `autotrader`.
The end-to-end test (tests/flows/test_e2e_postgres.py) starts the same stack with `start_production_server`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.secrets import redact
from scripts.processes import (
    PROJECT_ROOT,
    ManagedProcess,
    PostgresCluster,
    PostgresUnavailable,
    PrefectServer,
    start_prefect_server,
)

WORK_POOL = "autotrader-process"
DATABASE_USER = "autotrader"
PREFECT_DATABASE = "prefect"
AUTOTRADER_DATABASE = "autotrader"
DEFAULT_ROOT = PROJECT_ROOT / "var" / "server"
DEFAULT_PREFECT_PORT = 4200
DEFAULT_POSTGRES_PORT = 5433  # not 5432, where a system PostgreSQL may already listen
# Prefect's minimum; the zombie automation (`make automations`) is told the same value.
HEARTBEAT_SECONDS = 30


@dataclass
class ProductionServer:
    root: Path
    cluster: PostgresCluster
    prefect: PrefectServer

    @property
    def workers(self) -> list[ManagedProcess]:
        return self.prefect.workers

    @property
    def autotrader_database_url(self) -> str:
        return self.cluster.url(AUTOTRADER_DATABASE)

    def client_env(self) -> dict[str, str]:
        """What a client (prefect deploy, make automations, autotrader report) needs to reach this stack; the
        heartbeat frequency is the workers', which `make automations` sizes the zombie window from."""
        return {
            "PREFECT_API_URL": self.prefect.api_url,
            "AUTOTRADER_DATABASE_URL": self.autotrader_database_url,
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
        }

    def start_worker(self, **extra_env: str) -> ManagedProcess:
        """One more process worker on the pool (autotrader-worker-1, -2 …); its flow runs write to the autotrader
        database."""
        env = {
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
            "PREFECT_LOGGING_EXTRA_LOGGERS": "engine",
            "AUTOTRADER_DATABASE_URL": self.autotrader_database_url,
            **extra_env,
        }
        return self.prefect.start_worker(WORK_POOL, f"autotrader-worker-{len(self.workers) + 1}", **env)

    def stop(self) -> None:
        """The workers first (they take no new runs), then the Prefect server, then PostgreSQL."""
        try:
            self.prefect.stop()
        finally:
            self.cluster.stop()


def database_password(path: Path) -> str:
    """The cluster's password, generated once and kept (mode 0600) so a restarted cluster accepts it."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(password)
    return password


def start_production_server(
    root: Path,
    *,
    prefect_port: int = DEFAULT_PREFECT_PORT,
    postgres_port: int = DEFAULT_POSTGRES_PORT,
    workers: int = 2,
    durable: bool = True,
    **worker_env: str,
) -> ProductionServer:
    """PostgreSQL (initialised on first use) → both databases → the Prefect server on it → the work pool →
    `workers` process workers. `durable=False` turns fsync off (throwaway test clusters). Whatever started is
    stopped again when a later step fails."""
    password = database_password(root / "postgres.password")
    cluster = PostgresCluster(root / "postgres", postgres_port, DATABASE_USER, password)
    if not cluster.initialized():
        cluster.init()
    cluster.start(fsync=durable)
    try:
        for database in (PREFECT_DATABASE, AUTOTRADER_DATABASE):
            cluster.create_database(database)
        prefect = start_prefect_server(
            root / "prefect", port=prefect_port, database_url=cluster.url(PREFECT_DATABASE, "postgresql+asyncpg")
        )
    except BaseException:
        cluster.stop()
        raise
    server = ProductionServer(root, cluster, prefect)
    try:
        prefect.cli("work-pool", "create", WORK_POOL, "--type", "process", "--overwrite")
        for _ in range(workers):
            server.start_worker(**worker_env)
    except BaseException:
        server.stop()
        raise
    return server


# --- the command: start in the foreground, stop from elsewhere -------------------------------------------------


def _state_path(root: Path) -> Path:
    return root / "server.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_env_file(server: ProductionServer) -> Path:
    path = server.root / "env.sh"
    path.touch(mode=0o600)
    path.chmod(0o600)  # it holds the database password
    path.write_text("".join(f"export {key}='{value}'\n" for key, value in server.client_env().items()))
    return path


def start(args: argparse.Namespace) -> int:
    root: Path = args.root
    state = _state_path(root)
    if state.exists() and _alive(int(json.loads(state.read_text())["pid"])):
        print(f"error: a server is already running from {root} (make server-stop stops it)", file=sys.stderr)
        return 1
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop_requested.set())
    print(f"starting PostgreSQL on 127.0.0.1:{args.postgres_port}, then the Prefect server on "
          f"127.0.0.1:{args.port} and {args.workers} workers (state in {root}) ...", flush=True)
    try:
        server = start_production_server(
            root, prefect_port=args.port, postgres_port=args.postgres_port, workers=args.workers
        )
    except (PostgresUnavailable, RuntimeError, AssertionError) as error:
        print(f"error: {redact(str(error))}", file=sys.stderr)
        return 1
    try:
        state.write_text(json.dumps({
            "pid": os.getpid(),
            "process_groups": [server.prefect.server.process.pid, *(w.process.pid for w in server.workers)],
        }))
        env_file = _write_env_file(server)
        print(f"Prefect UI and API: {server.prefect.url} (server on PostgreSQL database {PREFECT_DATABASE!r})")
        print(f"autotrader database: {redact(server.autotrader_database_url)}")
        print(f"work pool {WORK_POOL!r}: {len(server.workers)} process workers, heartbeat every {HEARTBEAT_SECONDS} s")
        print(f"logs: {server.prefect.home}/*.log, {server.cluster.log_path}")
        print(f"next: source {env_file} && .venv/bin/prefect deploy --all && make automations")
        print("Ctrl-C (or make server-stop) stops everything.", flush=True)
        while not stop_requested.wait(1):
            for process in (server.prefect.server, *server.workers):
                if process.process.poll() is not None:
                    print(f"error: {process.name} exited ({process.process.returncode}), see {process.log_path}",
                          file=sys.stderr)
                    stop_requested.set()
    finally:
        print("stopping the workers, the Prefect server and PostgreSQL ...", flush=True)
        server.stop()
        state.unlink(missing_ok=True)
    print("stopped")
    return 0


def stop(args: argparse.Namespace) -> int:
    root: Path = args.root
    state = _state_path(root)
    if not state.exists():
        print(f"no server running from {root}")
        return 0
    recorded = json.loads(state.read_text())
    pid = int(recorded["pid"])
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)  # the running `start` stops everything in order
        deadline = time.monotonic() + 90
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not _alive(pid):
            print("stopped")
            return 0
    # `start` died without cleaning up: stop what it recorded.
    for group in recorded.get("process_groups", []):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(group), signal.SIGTERM)
    cluster = PostgresCluster(root / "postgres", 0, DATABASE_USER, "")
    cluster.stop()
    state.unlink(missing_ok=True)
    print("stopped (cleaned up after a server that had died)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state directory (default: var/server)")
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start everything in the foreground; Ctrl-C stops it")
    start_parser.add_argument("--port", type=int, default=DEFAULT_PREFECT_PORT, help="Prefect server port")
    start_parser.add_argument("--postgres-port", type=int, default=DEFAULT_POSTGRES_PORT)
    start_parser.add_argument("--workers", type=int, default=2)
    commands.add_parser("stop", help="stop a server started by `start`")
    args = parser.parse_args(argv)
    args.root = args.root.resolve()
    return start(args) if args.command == "start" else stop(args)


if __name__ == "__main__":
    sys.exit(main())
