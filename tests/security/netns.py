"""A non-loopback host for tests: two network namespaces joined by a veth pair, `client`
(10.<net>.<sub>.1) and `server` (10.<net>.<sub>.2), plus a Kite-shaped HTTPS server that records every
connection and request it gets. Nothing touches the machine's own network; needs root and iproute2.

    with NetnsPair() as pair, pair.serve_fake_kite(tmp_path) as kite:
        subprocess.run(pair.exec_argv([...]), env={..., "KITE_ROOT_URL": kite.url, "REQUESTS_CA_BUNDLE": kite.cert})
        assert kite.requests() == []

Run as `python -m tests.security.netns serve --host H --port P --cert C --key K --log L` (in a namespace)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_broker_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No broker or autotrader variable from outside, and an empty working
    directory (no `.env`). Modules use it with `pytestmark = pytest.mark.usefixtures(...)`."""
    for variable in list(os.environ):
        if variable.startswith(("AUTOTRADER_", "KITE_", "UPSTOX_")):
            monkeypatch.delenv(variable)
    monkeypatch.chdir(tmp_path)


def isolated_environment(home: Path, **variables: str) -> dict[str, str]:
    """The environment for an `autotrader` child process: this one's without any broker, autotrader
    or Prefect variable, its own Prefect home under `home`, the project importable, and `variables`."""
    prefixes = ("AUTOTRADER_", "KITE_", "UPSTOX_", "PREFECT_")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(prefixes)},
        "PYTHONPATH": str(PROJECT_ROOT),
        "AUTOTRADER_UNIVERSE__MAX_INSTRUMENTS": "12",  # a short day
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_PROFILES_PATH": str(home / "prefect" / "profiles.toml"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a loaded 2-core machine
        **variables,
    }


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2 (the `ip` command) is not installed"
    if shutil.which("openssl") is None:
        return "openssl is needed to make the fake broker's certificate"
    probe = f"atprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError) as error:
        return f"`ip netns add` does not work here: {getattr(error, 'stderr', '') or error}"
    with contextlib.suppress(subprocess.CalledProcessError, OSError):
        _ip("netns", "del", probe)
    return None


@dataclass
class FakeKite:
    url: str
    cert: Path
    log: Path

    def requests(self) -> list[str]:
        """Every connection ("CONNECT <peer>") and request ("<METHOD> <path>") the server saw."""
        return self.log.read_text().splitlines() if self.log.exists() else []


class NetnsPair:
    """Two fresh namespaces and a veth pair between them; `__exit__` deletes both (and so the pair)."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.client, self.server = f"atc{tag}", f"ats{tag}"
        subnet = os.getpid() % 250 + 1
        self.client_ip, self.server_ip = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> NetnsPair:
        try:
            for namespace in (self.client, self.server):
                _ip("netns", "add", namespace)
                _ip("-n", namespace, "link", "set", "lo", "up")  # Prefect and the replay server use 127.0.0.1
            _ip("link", "add", "veth-c", "netns", self.client, "type", "veth", "peer", "name", "veth-s",
                "netns", self.server)
            for namespace, address, device in ((self.client, self.client_ip, "veth-c"),
                                               (self.server, self.server_ip, "veth-s")):
                _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", device)
                _ip("-n", namespace, "link", "set", device, "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        for namespace in (self.client, self.server):
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                _ip("netns", "del", namespace)

    def exec_argv(self, argv: list[str], namespace: str | None = None) -> list[str]:
        """`argv` run inside `namespace` (default: the client's)."""
        return ["ip", "netns", "exec", namespace or self.client, *argv]

    @contextlib.contextmanager
    def serve_fake_kite(self, directory: Path, port: int = 8443) -> Iterator[FakeKite]:
        """A Kite-shaped HTTPS server on the server namespace's address, with a self-signed
        certificate for that address (trust it with REQUESTS_CA_BUNDLE=kite.cert)."""
        cert, key, log = directory / "kite-cert.pem", directory / "kite-key.pem", directory / "kite-requests.log"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={self.server_ip}",
             "-addext", f"subjectAltName=IP:{self.server_ip}", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )
        ready = directory / "kite-ready"
        process = subprocess.Popen(
            self.exec_argv([sys.executable, "-m", "tests.security.netns", "serve", "--host", self.server_ip,
                            "--port", str(port), "--cert", str(cert), "--key", str(key), "--log", str(log),
                            "--ready", str(ready)], self.server),
            cwd=PROJECT_ROOT,
        )
        self._processes.append(process)
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the fake Kite server did not start (exit code {process.poll()})")
                time.sleep(0.05)
            yield FakeKite(url=f"https://{self.server_ip}:{port}", cert=cert, log=log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


# ---- the fake "production" Kite server (runs inside the server namespace) --------------------------

KITE_ANSWERS: dict[tuple[str, str], Any] = {
    ("GET", "/user/profile"): {"user_id": "AB1234", "user_name": "Production User", "broker": "ZERODHA"},
    ("GET", "/user/margins/equity"): {"net": 1_000_000.0, "available": {"cash": 1_000_000.0}},
    ("GET", "/portfolio/positions"): {"net": [], "day": []},
    ("POST", "/orders/regular"): {"order_id": "240604000000001"},
    ("POST", "/gtt/triggers"): {"trigger_id": 1},
}


def serve(host: str, port: int, cert: Path, key: Path, log: Path, ready: Path) -> None:
    def record(line: str) -> None:
        with log.open("a") as out:
            out.write(line + "\n")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path = self.path.split("?")[0]
            record(f"{self.command} {path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = json.dumps({"status": "success", "data": KITE_ANSWERS.get((self.command, path), [])}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *_: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Server(ThreadingHTTPServer):
        def get_request(self) -> tuple[socket.socket, Any]:
            connection, peer = self.socket.accept()
            record(f"CONNECT {peer[0]}")  # counted before TLS: any attempt at all is seen
            return context.wrap_socket(connection, server_side=True), peer

    with Server((host, port), Handler) as server:
        ready.touch()
        server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.security.netns")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="the fake production Kite server")
    serve_parser.add_argument("--host", required=True)
    serve_parser.add_argument("--port", type=int, required=True)
    for name in ("cert", "key", "log", "ready"):
        serve_parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args()
    serve(args.host, args.port, args.cert, args.key, args.log, args.ready)


if __name__ == "__main__":
    main()
