"""`autotrader login zerodha|upstox`, driven for real: the command runs in its own process against the
Kite or Upstox sandbox; the test opens the printed URL (the listener forwards it to the login page),
performs the broker's redirect to the listener with a one-time code, and checks the stored token and
that no output holds it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest

from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.brokers.upstox.sandbox_account import CLIENT_ID
from engine.brokers.zerodha.sandbox import KiteSandbox
from tests.conftest import PROJECT_ROOT

KITE_TOKEN = "kite-renewed-token-5f3a9c"
UPSTOX_TOKEN = "upstox-renewed-token-8b1d2e"
APP_SECRET = "app-secret-for-the-login-test"
START = re.compile(r"Open (http://127\.0\.0\.1:\d+/login) in a browser")


class LoginProcess:
    """`autotrader login …` in a child process; its output is collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "login", *args], env=env, cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.started = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if START.search(line):
                self.started.set()
        self.started.set()  # ended without the line: the test fails on `start_url`

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def start_url(self) -> str:
        assert self.started.wait(60), "the login command printed no URL within 60 s"
        match = START.search(self.output)
        assert match, self.output
        return match[1]

    def finish(self) -> int:
        code = self.process.wait(timeout=60)
        self.reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.reader.join(timeout=5)


def _environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOTRADER_", "KITE_", "UPSTOX_"))}
    env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(PROJECT_ROOT), **variables)
    return env


@pytest.fixture
def kite() -> Iterator[KiteSandbox]:
    with KiteSandbox(access_token=KITE_TOKEN) as sandbox:
        sandbox.account.app_secret = APP_SECRET
        yield sandbox


@pytest.fixture
def upstox() -> Iterator[UpstoxSandbox]:
    with UpstoxSandbox(access_token=UPSTOX_TOKEN) as sandbox:
        sandbox.account.app_secret = APP_SECRET
        yield sandbox


def _kite_login(kite: KiteSandbox, tmp_path: Path, args: list[str], request_token: str,
                **extra: str) -> tuple[LoginProcess, int]:
    env = _environment(KITE_API_KEY=kite.api_key, KITE_API_SECRET=APP_SECRET, KITE_ROOT_URL=kite.url, **extra)
    login = LoginProcess(["zerodha", *args], env, tmp_path)
    try:
        start = login.start_url()
        forwarded = httpx.get(start, follow_redirects=False, timeout=10)
        assert forwarded.status_code == 302
        assert parse_qs(urlparse(forwarded.headers["location"]).query)["api_key"] == [kite.api_key]
        redirect = start.removesuffix("login") + "?" + urlencode(
            {"action": "login", "type": "login", "status": "success", "request_token": request_token})
        assert httpx.get(redirect, timeout=10).status_code == 200
        return login, login.finish()
    finally:
        login.kill()


def test_kite_login_stores_the_token_in_the_env_file_and_never_prints_it(kite: KiteSandbox, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KITE_API_KEY=kept\nKITE_ACCESS_TOKEN=yesterdays-token\nAUTOTRADER_BROKER=zerodha\n")
    code = kite.account.issue_code()
    login, exit_code = _kite_login(kite, tmp_path, ["--env-file", str(env_file)], code)
    assert exit_code == 0, login.output
    assert env_file.read_text().splitlines() == ["KITE_API_KEY=kept", f"KITE_ACCESS_TOKEN={KITE_TOKEN}",
                                                 "AUTOTRADER_BROKER=zerodha"]
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert "stored in" in login.output
    for secret in (KITE_TOKEN, APP_SECRET, code):
        assert secret not in login.output
    assert kite.account.codes == set()  # the request token was exchanged (and cannot be again)


def test_kite_login_with_a_wrong_request_token_fails_clearly(kite: KiteSandbox, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    login, exit_code = _kite_login(kite, tmp_path, ["--env-file", str(env_file)], "not-an-issued-token")
    assert exit_code == 2
    assert "login zerodha failed: Kite refused the request token (TokenException)" in login.output
    assert "Traceback" not in login.output and not env_file.exists()


def test_upstox_login_stores_the_token_in_the_env_file(upstox: UpstoxSandbox, tmp_path: Path) -> None:
    env_file = tmp_path / "live.env"
    env = _environment(UPSTOX_API_KEY=CLIENT_ID, UPSTOX_API_SECRET=APP_SECRET, UPSTOX_API_URL=upstox.url)
    code = upstox.account.issue_code()
    login = LoginProcess(["upstox", "--env-file", str(env_file)], env, tmp_path)
    try:
        forwarded = httpx.get(login.start_url(), follow_redirects=False, timeout=10)
        dialog = urlparse(forwarded.headers["location"])
        assert (dialog.netloc, dialog.path) == (urlparse(upstox.url).netloc, "/v2/login/authorization/dialog")
        query = {name: values[0] for name, values in parse_qs(dialog.query).items()}
        assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
        wrong_state = httpx.get(query["redirect_uri"] + "?" + urlencode({"code": code, "state": "forged"}))
        assert wrong_state.status_code == 200  # answered, and the login fails on the mismatch
        assert login.finish() == 2
        assert "did not match this login" in login.output and not env_file.exists()
    finally:
        login.kill()

    login = LoginProcess(["upstox", "--env-file", str(env_file)], env, tmp_path)
    try:
        forwarded = httpx.get(login.start_url(), follow_redirects=False, timeout=10)
        query = {name: values[0] for name, values in parse_qs(urlparse(forwarded.headers["location"]).query).items()}
        redirect = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]})
        assert httpx.get(redirect, timeout=10).status_code == 200
        assert login.finish() == 0, login.output
    finally:
        login.kill()
    assert env_file.read_text() == f"UPSTOX_ACCESS_TOKEN={UPSTOX_TOKEN}\n"
    for secret in (UPSTOX_TOKEN, APP_SECRET, code):
        assert secret not in login.output
    assert upstox.calls("POST", "/v2/login/authorization/token") == 1


def test_login_without_the_app_secret_names_the_missing_variable(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cli.main", "login", "zerodha"], cwd=tmp_path, text=True,
                            capture_output=True, timeout=60, env=_environment(KITE_API_KEY="some-api-key"))
    assert result.returncode == 2
    assert "KITE_API_SECRET must be set" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.usefixtures("prefect_harness")
def test_kite_login_stores_the_token_in_the_prefect_secret_block(kite: KiteSandbox, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret
    from prefect.settings import PREFECT_API_URL

    from engine.brokers.login import TokenProvider
    from tasks.token_blocks import secret_block_loader

    code = kite.account.issue_code()
    login, exit_code = _kite_login(kite, tmp_path, [], code, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    assert exit_code == 0, login.output
    assert Secret.load("kite-access-token").get() == KITE_TOKEN
    # what a running session re-reads on reconnect: the block first, then the environment
    provider = TokenProvider("KITE_ACCESS_TOKEN", loader=secret_block_loader("kite-access-token"),
                             dotenv_path=tmp_path / "none", environ={"KITE_ACCESS_TOKEN": "yesterdays"})
    assert provider() == KITE_TOKEN
    assert secret_block_loader("no-such-block")() is None
    assert "Prefect Secret block 'kite-access-token'" in login.output
    assert KITE_TOKEN not in login.output
