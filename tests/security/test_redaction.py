"""Secrets never leave the process. A hostile loopback gateway echoes the request headers (with the
access token) into its error body, in Kite's and in Upstox's error shape; the token must appear in
none of: the raised exception (str, repr, traceback), the CLI's output, the checkpoint row, a
Prefect flow run's and task run's state messages, and the alert text."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from engine.brokers.base import BrokerError, OrderRejected, TokenExpired
from engine.brokers.factory import make_broker
from engine.clock import LiveClock, SteppedClock
from engine.feed.backfill import UpstoxIntradayCandles
from engine.feed.client import FeedState, MarketDataClient
from engine.models import IST
from engine.secrets import REDACTED, redact, redact_errors, redacted_error, register_secret, registered_secrets
from engine.session.stages import FAILED, record_stage, stage_state
from engine.settings import load_credentials, load_settings
from engine.storage import init_db

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AUTOTRADER = Path(sys.executable).parent / "autotrader"
DAY = date(2024, 6, 4)
DAY_START = datetime(2024, 6, 4, 9, 0, tzinfo=IST)


@dataclass
class HostileGateway:
    """Answers every request with an error whose message is the request's headers, verbatim."""

    shape: str  # "kite" or "upstox"
    status: int = 400
    url: str = ""
    requests: list[str] = field(default_factory=list)


def _handler(gateway: HostileGateway) -> type[BaseHTTPRequestHandler]:
    class Echo(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            gateway.requests.append(self.path)
            headers = sorted(self.headers.items(), key=lambda item: item[0].lower() != "authorization")  # it first
            echo = "request rejected; headers were: " + "; ".join(f"{k}: {v}" for k, v in headers)
            if gateway.shape == "kite":
                body: dict[str, Any] = {"status": "error", "error_type": "InputException", "message": echo}
            else:
                body = {"status": "error", "errors": [{"errorCode": "UDAPI1000", "message": echo}]}
            payload = json.dumps(body).encode()
            self.send_response(gateway.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:  # quiet
            pass

    return Echo


@pytest.fixture
def gateway(request: pytest.FixtureRequest) -> Iterator[HostileGateway]:
    hostile = HostileGateway(shape=getattr(request, "param", "kite"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hostile))
    hostile.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hostile
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Credentials:
    api_key: str
    access_token: str

    @property
    def values(self) -> list[str]:
        return [self.api_key, self.access_token]


@pytest.fixture
def venue(gateway: HostileGateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Credentials:
    """Fresh, never-registered credentials and the environment that points the gateway's venue at it."""
    credentials = Credentials(f"key{secrets.token_hex(8)}", f"tok{secrets.token_hex(16)}")
    monkeypatch.chdir(tmp_path)  # no .env of the project's
    monkeypatch.setenv("AUTOTRADER_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    if gateway.shape == "kite":
        monkeypatch.setenv("AUTOTRADER_BROKER", "zerodha")
        monkeypatch.setenv("KITE_ROOT_URL", gateway.url)
        monkeypatch.setenv("KITE_API_KEY", credentials.api_key)
        monkeypatch.setenv("KITE_ACCESS_TOKEN", credentials.access_token)
    else:
        monkeypatch.setenv("AUTOTRADER_BROKER", "upstox")
        monkeypatch.setenv("UPSTOX_API_URL", gateway.url)
        monkeypatch.setenv("UPSTOX_ORDER_URL", gateway.url)
        monkeypatch.setenv("UPSTOX_ACCESS_TOKEN", credentials.access_token)
        monkeypatch.setenv("AUTOTRADER_UPSTOX__ALGO_NAME", "autotrader-tests")  # a live Upstox venue needs one
        credentials.api_key = credentials.access_token  # Upstox has no API key on the wire
    return credentials


def assert_no_secret(text: str, credentials: Credentials) -> None:
    for value in credentials.values:
        assert value not in text, f"secret leaked in: {text[:400]}"


VENUES = pytest.mark.parametrize("gateway", ["kite", "upstox"], indirect=True)


# ---------------------------------------------------------------- exceptions built from broker responses


@VENUES
async def test_a_broker_error_from_an_echoing_gateway_carries_no_token(
    gateway: HostileGateway, venue: Credentials
) -> None:
    broker = make_broker(load_settings(), load_credentials(), clock=LiveClock())
    try:
        with pytest.raises(BrokerError) as raised:
            await broker.connect()
    finally:
        await broker.close()
    error = raised.value
    assert isinstance(error, OrderRejected)
    assert gateway.requests, "the gateway was never asked"
    text = "".join(traceback.format_exception(error))
    for shown in (str(error), repr(error), text, raised.getrepr(chain=True).__str__()):
        assert_no_secret(shown, venue)
    assert REDACTED in str(error) and "headers were" in str(error)  # the message is kept, only the token masked
    assert error.__cause__ is None and error.__context__ is None  # no chained SDK error holding the raw body


# ---------------------------------------------------------------- the CLI


@VENUES
def test_autotrader_reconcile_prints_no_token(gateway: HostileGateway, venue: Credentials) -> None:
    result = subprocess.run(
        [str(AUTOTRADER), "reconcile"], env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True, text=True, timeout=120,
    )
    assert gateway.requests
    assert result.returncode == 2, result.stderr
    assert "reconcile failed: OrderRejected" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret(result.stdout + result.stderr, venue)


@VENUES
def test_cli_json_and_error_output_is_redacted_in_process(gateway: HostileGateway, venue: Credentials) -> None:
    result = CliRunner().invoke(app, ["reconcile", "--json"])
    assert result.exit_code == 2
    assert "OrderRejected" in result.output
    assert_no_secret(result.output, venue)


def test_print_json_and_fail_redact_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.common import fail, print_json

    token = f"tok{secrets.token_hex(16)}"
    register_secret(token)
    print_json({"note": f"echo {token}", token: [f"Bearer {token}"]})
    fail(f"broker said {token}")
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    assert json.loads(captured.out) == {"note": "echo ***", "***": ["Bearer ***"]}
    assert "broker said ***" in captured.err


def test_an_unexpected_cli_crash_prints_a_redacted_traceback(tmp_path: Path) -> None:
    """The CLI's excepthook: even a bug's traceback never shows a registered credential."""
    token = f"tok{secrets.token_hex(16)}"
    script = (
        "import sys; from cli.main import app\n"
        "@app.command('explode')\n"
        "def explode() -> None:\n"
        f"    raise RuntimeError('boom with {token}')\n"
        "sys.argv = ['autotrader', 'explode']; app()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "KITE_ACCESS_TOKEN": token}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "RuntimeError: boom with ***" in result.stderr
    assert token not in result.stderr + result.stdout


# ---------------------------------------------------------------- checkpoint rows


def test_record_stage_stores_no_secret(tmp_path: Path) -> None:
    registered = f"tok{secrets.token_hex(16)}"
    never_registered = f"tok{secrets.token_hex(16)}"
    register_secret(registered)
    db = init_db(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        record_stage(db, DAY, "live_session", FAILED, SteppedClock(DAY_START), {
            "error": f"HTTP 403: headers Authorization: Bearer {never_registered}; echo {registered}",
            "feed": {"last_error": f"token {registered}"},
        })
        status, checkpoint = stage_state(db, DAY, "live_session") or ("", {})
        raw = db.raw_connection().cursor().execute("select checkpoint_json from session_state").fetchone()[0]
    finally:
        db.dispose()
    assert status == FAILED
    assert registered not in raw and never_registered not in raw
    assert checkpoint == {
        "error": "HTTP 403: headers Authorization: Bearer ***; echo ***", "feed": {"last_error": "token ***"},
    }


# ---------------------------------------------------------------- tokens read at runtime


def test_a_token_registered_mid_run_is_redacted_afterwards() -> None:
    refreshed = f"refreshed{secrets.token_hex(12)}"
    message = f"session rejected {refreshed}"
    assert redact(message) == message  # unknown until read
    register_secret(refreshed)
    assert redact(message) == "session rejected ***"
    assert refreshed in registered_secrets()


@pytest.mark.parametrize("gateway", ["upstox"], indirect=True)
async def test_the_feed_client_registers_the_token_it_reads_on_each_connect(gateway: HostileGateway) -> None:
    gateway.status = 403
    refreshed = f"refreshed{secrets.token_hex(12)}"
    client = MarketDataClient(api_url=gateway.url, token_provider=lambda: refreshed, clock=LiveClock(),
                              backfill=False)
    assert await client.run() is FeedState.TOKEN_EXPIRED
    assert gateway.requests
    assert refreshed in registered_secrets()
    # redacted before the reason is cut to 200 characters: no token prefix survives, even in memory
    assert refreshed not in client.stats.last_error and "Bearer ***" in client.stats.last_error


@pytest.mark.parametrize("gateway", ["upstox"], indirect=True)
async def test_backfill_registers_the_token_it_reads(gateway: HostileGateway) -> None:
    refreshed = f"refreshed{secrets.token_hex(12)}"
    source = UpstoxIntradayCandles(gateway.url, lambda: refreshed, timeout_seconds=5)
    candles = await source.fetch(["NSE_EQ|INE002A01018"])
    assert candles == {}
    assert gateway.requests
    assert refreshed in registered_secrets()


# ---------------------------------------------------------------- token shapes never registered


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOi.J9xyz-abc_DEF", "Authorization: Bearer ***"),
        ("{'Authorization': 'token kitekey123:AbCdEf0123456789'}", "{'Authorization': 'token ***:***'}"),
        ('{"access_token": "AbCdEf0123456789", "user": "AB1234"}', '{"access_token": "***", "user": "AB1234"}'),
        ("login?api_key=kitekey123&v=3", "login?api_key=***&v=3"),
        ("UPSTOX_ACCESS_TOKEN=AbCdEf0123456789", "UPSTOX_ACCESS_TOKEN=***"),
        ("postgresql://trader:s3cr%40t@db.local:5432/autotrader", "postgresql://trader:***@db.local:5432/autotrader"),
        # ordinary text is left alone
        ("token expired: log in again", "token expired: log in again"),
        ("password authentication failed for user trader", "password authentication failed for user trader"),
    ],
)
def test_token_shapes_are_masked_even_when_never_registered(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent


def test_redacted_error_keeps_the_class_and_drops_the_chain() -> None:
    token = f"tok{secrets.token_hex(16)}"
    register_secret(token)
    try:
        try:
            raise ValueError(f"raw body {token}")
        except ValueError as cause:
            raise TokenExpired(f"refused {token}") from cause
    except TokenExpired as error:
        clean = redacted_error(error)
    assert type(clean) is TokenExpired and str(clean) == "refused ***"
    assert token not in "".join(traceback.format_exception(clean))
    plain = TokenExpired("no secret here")
    assert redacted_error(plain) is plain


async def test_redact_errors_wraps_sync_and_async_functions() -> None:
    token = f"tok{secrets.token_hex(16)}"
    register_secret(token)

    @redact_errors
    def sync() -> None:
        raise KeyError(f"missing {token}")

    @redact_errors
    async def asynchronous() -> None:
        raise OSError(5, f"io {token}")

    with pytest.raises(KeyError) as sync_error:
        sync()
    with pytest.raises(OSError) as async_error:
        await asynchronous()
    for error in (sync_error.value, async_error.value):
        assert token not in "".join(traceback.format_exception(error))
        assert error.__context__ is None



# ---------------------------------------------------------------- database passwords, the demo summary


def test_opening_a_trading_day_registers_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.session.stages import open_trading_day

    password = f"pw{secrets.token_hex(10)}"
    url = f"postgresql://trader:{password}@127.0.0.1:1/autotrader"
    context = open_trading_day(DAY.isoformat(), LiveClock(), database_url=url)  # the database is opened lazily
    assert context.day == DAY
    assert password in registered_secrets()
    assert redact(f"connection to server failed (password {password!r} rejected)") == (
        "connection to server failed (password '***' rejected)"
    )


def test_the_demo_summary_is_redacted() -> None:
    from engine.session.summary import RunSummary

    token = f"tok{secrets.token_hex(16)}"
    register_secret(token)
    summary = RunSummary(trades=[{"day": "2024-06-04", "symbol": "RELIANCE", "net_pnl": 1.0,
                                  "exit_reason": f"broker said {token}"}])
    assert summary.as_dict()["trades"][0]["exit_reason"] == "broker said ***"
