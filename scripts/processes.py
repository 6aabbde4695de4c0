"""Real Prefect processes: a `prefect server` on 127.0.0.1 (SQLite, PREFECT_HOME in a given directory, or a
PostgreSQL database) and `prefect worker`s. Every process runs in its own process group and is stopped, group
and all, by `stop()`. Also a PostgreSQL cluster from the OS packages (`PostgresCluster`). Used by
`scripts/prod_server.py` (`make server`) and by the end-to-end tests."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
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

    def kill(self) -> None:
        """SIGKILL the process group at once, as a machine or OOM kill would: no handler runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


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

    def start_worker(self, pool: str, name: str | None = None, **extra_env: str) -> ManagedProcess:
        args = [str(BIN / "prefect"), "worker", "start", "--pool", pool, "--type", "process"]
        if name:  # a stable name keeps one row per worker in the pool across restarts
            args += ["--name", name]
        worker = start_process(f"worker-{len(self.workers)}", args, self.env(**extra_env), self.home)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.server.stop()


def start_prefect_server(
    home: Path, startup_timeout: float = 120.0, *, port: int | None = None, database_url: str | None = None
) -> PrefectServer:
    """A `prefect server` on 127.0.0.1 (`port`, else a free one) with its state in `home`: SQLite there, or
    the database of `database_url` (e.g. postgresql+asyncpg://…, given in the environment, never in argv)."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    env = prefect_env(home)
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
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


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries, or a user to run them as, are missing."""


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL server binaries (`apt-get install postgresql`, or `make system-deps`)."""
    def version(initdb: str) -> list[int]:  # /usr/lib/postgresql/<version>/bin/initdb
        return [int(part) for part in Path(initdb).parts[-3].split(".") if part.isdigit()]

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin/initdb): "
            "run `make system-deps` as root, or `apt-get install postgresql`"
        )
    return Path(found[-1]).parent


def postgres_os_user() -> pwd.struct_passwd | None:
    """The OS user the cluster runs as: None (this user) unless we are root, whom PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam("postgres")
    except KeyError as error:
        raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from error
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root and runuser is unavailable to run the server as 'postgres'")
    return user


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster in `root` (data, Unix socket, log) listening on 127.0.0.1:`port` only, with one
    superuser `user` authenticated by password (scram-sha-256) on every connection."""

    root: Path
    port: int
    user: str
    password: str = field(repr=False)  # never in a repr, a traceback or a test report
    bin_dir: Path = field(default_factory=postgres_bin_dir)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str, driver: str = "postgresql") -> str:
        """The URL of `database`, password included: pass it in an environment variable, never print it."""
        return f"{driver}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, as_owner: bool = True, timeout: float = 120) -> None:
        command = [str(self.bin_dir / tool), *args]
        owner = postgres_os_user() if as_owner else None
        if owner is not None:
            command = ["runuser", "-u", owner.pw_name, "--", *command]
        env = {**os.environ, "PGPASSWORD": self.password}  # client tools read it; never in argv
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout}")

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """initdb the cluster (once): a superuser with the password, password auth everywhere."""
        owner = postgres_os_user()
        self.root.mkdir(parents=True, exist_ok=True)
        password_file = self.root / "initdb.password"
        password_file.write_text(self.password)
        try:
            password_file.chmod(0o600)
            if owner is not None:  # the cluster's files belong to the user it runs as
                os.chown(self.root, owner.pw_uid, owner.pw_gid)
                os.chown(password_file, owner.pw_uid, owner.pw_gid)
            self._run("initdb", "-D", str(self.data_dir), "-U", self.user, "-E", "UTF8", "-A", "scram-sha-256",
                      f"--pwfile={password_file}")
        finally:
            password_file.unlink(missing_ok=True)

    def start(self, fsync: bool = True) -> None:
        """Start the server (waits until it accepts connections): TCP on 127.0.0.1 only, its socket in root."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root}"
        if not fsync:  # throwaway test clusters: faster, and a crash loses nothing worth keeping
            options += " -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "start")

    def create_database(self, name: str) -> None:
        """Create `name` unless it exists (a restarted cluster keeps its databases)."""
        try:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name, as_owner=False)
        except RuntimeError as error:
            if "already exists" not in str(error):
                raise

    def stop(self) -> None:
        if self.initialized() and (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
