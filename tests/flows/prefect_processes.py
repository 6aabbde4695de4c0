"""Real Prefect processes for end-to-end tests: a `prefect server` on 127.0.0.1 (SQLite, PREFECT_HOME
in a temporary directory) and `prefect worker`s. Every process runs in its own process group and
is stopped, group and all, by `stop()`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """Environment isolating Prefect in `home`: its own database, profile and settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_PROFILES_PATH=str(home / "profiles.toml"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_LOGGING_LEVEL="INFO",
        # Visit schedules often so a test sees scheduled runs appear within seconds.
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        PYTHONUNBUFFERED="1",
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def start_process(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> ManagedProcess:
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return ManagedProcess(name, process, log_path)


@dataclass
class PrefectServer:
    home: Path
    port: int
    server: ManagedProcess
    workers: list[ManagedProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self, **extra: str) -> dict[str, str]:
        env = prefect_env(self.home, self.api_url)
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run `prefect <args>` against this server; raise with the output when it fails."""
        result = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=PROJECT_ROOT,
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start_worker(self, pool: str, **extra_env: str) -> ManagedProcess:
        args = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"]
        worker = start_process(f"worker-{len(self.workers)}", args, self.env(**extra_env), self.home)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.server.stop()


def start_prefect_server(home: Path, startup_timeout: float = 120.0) -> PrefectServer:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    env = prefect_env(home)
    # The UI's API address defaults to port 4200 whatever --port says.
    env.update(PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api", PREFECT_SERVER_API_PORT=str(port))
    server = PrefectServer(home, port, start_process("server", args, env, home))
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if server.server.process.poll() is not None:
            raise RuntimeError(f"prefect server exited early:\n{server.server.log()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                return server
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"prefect server did not answer within {startup_timeout}s:\n{server.server.log()}")
