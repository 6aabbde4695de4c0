"""The servers we ship (the replay server `autotrader feed serve`, the Kite and Upstox sandboxes) listen on loopback
unless a token is required; with one required, other tokens get 401. No token travels in argv or shows in output."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websockets
from typer.testing import CliRunner, Result
from websockets.exceptions import InvalidStatus

from cli.feed_cmd import SERVE_TOKEN_VARIABLE, serve_token
from cli.main import app
from engine.brokers.loopback import JsonHandler, LoopbackListener
from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.brokers.zerodha.sandbox import KiteSandbox
from engine.feed.client import AUTHORIZE_PATH
from engine.feed.replay import ReplayServer
from engine.listen import ExposedHostError, is_loopback_host
from tests.engine.feed.conftest import REPLAY_DAY, write_replay_fixture

SERVE_TOKEN = "serve-token-7f3a9c1e"
UPSTOX_TOKEN = "upstox-token-5b2d8e4f"
EXPOSED_HOSTS = ["0.0.0.0", "::", "", "192.168.1.20", "feed.example.com"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_replay_fixture(tmp_path_factory.mktemp("replay-data"))


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI installs secret redaction process-wide (a log-record factory, root handler filters): undo it."""
    root = logging.getLogger()
    factory, filters = logging.getLogRecordFactory(), {handler: list(handler.filters) for handler in root.handlers}
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
        for handler, kept in filters.items():
            handler.filters[:] = kept


@pytest.fixture
def no_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVE_TOKEN_VARIABLE, raising=False)
    monkeypatch.delenv("UPSTOX_ACCESS_TOKEN", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here to supply a token


def _invoke(args: list[str]) -> tuple[Result, str]:
    result = CliRunner().invoke(app, args)
    return result, " ".join(result.output.split())


# ---- where a server may listen ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", EXPOSED_HOSTS)
def test_non_loopback_hosts(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.usefixtures("no_tokens")
@pytest.mark.parametrize("host", EXPOSED_HOSTS)
def test_feed_serve_refuses_a_non_loopback_host_without_a_required_token(host: str, tmp_path: Path) -> None:
    # a data dir without data: were the host let through, the command would fail later, on the data, not here
    result, output = _invoke(["feed", "serve", "--host", host, "--date", "2024-06-04", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"refusing to listen on {host!r}" in output
    assert "--require-token" in output and SERVE_TOKEN_VARIABLE in output


def test_feed_serve_lets_a_non_loopback_host_through_when_a_token_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SERVE_TOKEN_VARIABLE, SERVE_TOKEN)
    result, output = _invoke(["feed", "serve", "--host", "0.0.0.0", "--require-token", "--date", "2024-06-04",
                              "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "refusing" not in output and "instruments.parquet does not exist" in output  # past the host check
    assert SERVE_TOKEN not in result.output


@pytest.mark.usefixtures("no_tokens")
def test_feed_serve_require_token_needs_the_variable(tmp_path: Path) -> None:
    result, output = _invoke(["feed", "serve", "--require-token", "--date", "2024-06-04", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"--require-token: {SERVE_TOKEN_VARIABLE} is not set" in output


@pytest.mark.usefixtures("no_tokens")
def test_feed_serve_refuses_a_token_in_argv_without_echoing_it(tmp_path: Path) -> None:
    result, output = _invoke(["feed", "serve", "--token", SERVE_TOKEN, "--date", "2024-06-04",
                              "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--token is not accepted" in output and SERVE_TOKEN_VARIABLE in output
    assert SERVE_TOKEN not in result.output


def test_the_serve_token_variable_is_not_taken_for_an_unknown_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.settings import load_settings

    monkeypatch.setenv(SERVE_TOKEN_VARIABLE, SERVE_TOKEN)
    assert load_settings().data_dir  # strict settings refuse unknown AUTOTRADER_* variables, but not this one


def test_serve_token_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVE_TOKEN_VARIABLE, f"  {SERVE_TOKEN}\n")
    assert serve_token(required=True) == SERVE_TOKEN
    assert serve_token(required=False) is None  # without the flag the variable is not used


async def test_the_replay_server_refuses_an_exposed_host_without_a_token(data_dir: Path) -> None:
    with pytest.raises(ExposedHostError, match=r"refusing to listen on '0\.0\.0\.0'"):
        ReplayServer(data_dir=data_dir, day=REPLAY_DAY, host="0.0.0.0", token=None)
    exposed = ReplayServer(data_dir=data_dir, day=REPLAY_DAY, host="0.0.0.0", token=SERVE_TOKEN)  # never started
    with pytest.raises(ExposedHostError):
        exposed.set_token(None)  # would open it to any token


def test_the_sandboxes_refuse_a_non_loopback_host() -> None:
    with pytest.raises(ExposedHostError, match=r"refusing to listen on '0\.0\.0\.0'"):
        LoopbackListener(JsonHandler, host="0.0.0.0")
    with pytest.raises(ExposedHostError):
        KiteSandbox().start(host="0.0.0.0")
    with pytest.raises(ExposedHostError):
        UpstoxSandbox(host="0.0.0.0").start()
    listener = LoopbackListener(JsonHandler, host="127.0.0.1")  # loopback still works
    try:
        assert listener.url.startswith("http://127.0.0.1:")
    finally:
        listener.stop()


# ---- a required token is enforced ---------------------------------------------------------------------------


@pytest.fixture
async def guarded_server(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ReplayServer]:
    """In process on 127.0.0.1, with the token `feed serve --require-token` takes from the environment."""
    monkeypatch.setenv(SERVE_TOKEN_VARIABLE, SERVE_TOKEN)
    server = ReplayServer(data_dir=data_dir, day=REPLAY_DAY, host="127.0.0.1", port=0,
                          token=serve_token(required=True))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _authorize(server: ReplayServer, headers: dict[str, str]) -> requests.Response:
    return await asyncio.to_thread(requests.get, server.api_url + AUTHORIZE_PATH, headers=headers, timeout=5)


@pytest.mark.parametrize("header", [f"Bearer {SERVE_TOKEN}x", f"Bearer {SERVE_TOKEN[:-1]}", "Bearer other", ""])
async def test_a_required_token_rejects_every_other_token_on_authorize(
    guarded_server: ReplayServer, header: str
) -> None:
    answer = await _authorize(guarded_server, {"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["errorCode"] == "UDAPI100050"
    assert SERVE_TOKEN not in answer.text


async def test_a_required_token_rejects_other_tokens_on_the_websocket(guarded_server: ReplayServer) -> None:
    for headers in ({"Authorization": "Bearer other"}, {}):
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(guarded_server.ws_url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as forged:
        async with websockets.connect(guarded_server.ws_url + "?code=forged"):
            pass
    assert forged.value.response.status_code == 401


async def test_the_required_token_is_accepted(guarded_server: ReplayServer) -> None:
    answer = await _authorize(guarded_server, {"Authorization": f"Bearer {SERVE_TOKEN}"})
    assert answer.status_code == 200
    uri = answer.json()["data"]["authorized_redirect_uri"]
    assert SERVE_TOKEN not in uri
    async with websockets.connect(uri) as socket:
        assert isinstance(await asyncio.wait_for(socket.recv(), 5), bytes)  # the market_info frame
    async with websockets.connect(guarded_server.ws_url,
                                  additional_headers={"Authorization": f"Bearer {SERVE_TOKEN}"}) as socket:
        assert isinstance(await asyncio.wait_for(socket.recv(), 5), bytes)


@pytest.mark.e2e
async def test_cli_feed_serve_with_a_required_token_never_prints_it(data_dir: Path) -> None:
    command = [str(Path(sys.executable).with_name("autotrader")), "feed", "serve", "--port", "0", "--date",
               "2024-06-04", "--data-dir", str(data_dir), "--require-token", "--speed", "100"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, SERVE_TOKEN_VARIABLE: SERVE_TOKEN},
    )
    printed: list[str] = []
    try:
        assert process.stdout is not None
        while not any(line.startswith("authorize") for line in printed):  # the last line on stdout
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "the server exited early"
            printed.append(line)
        api_url = next(line for line in printed if line.startswith("api_url")).split(": ", 1)[1].strip()
        wrong = await asyncio.to_thread(requests.get, api_url + AUTHORIZE_PATH,
                                        headers={"Authorization": "Bearer any-token"}, timeout=5)
        right = await asyncio.to_thread(requests.get, api_url + AUTHORIZE_PATH,
                                        headers={"Authorization": f"Bearer {SERVE_TOKEN}"}, timeout=5)
        assert (wrong.status_code, right.status_code) == (401, 200)
    finally:
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    output = "".join(printed) + stderr.decode()
    assert f"required, from {SERVE_TOKEN_VARIABLE}" in output
    assert SERVE_TOKEN not in output


# ---- feed record: the token comes from the environment or a Prefect Secret block ---------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`record_frames` replaced: what the CLI passed it (no network). It logs and fails with the token in the
    text, as a client error might, to show neither reaches the output."""
    seen: dict[str, Any] = {}

    async def fake_record_frames(api_url: str, token: str, *args: Any, **kwargs: Any) -> int:
        seen["token"] = token
        logging.getLogger("engine.feed.recorder").warning("authorize with %s failed", token)
        raise RuntimeError(f"authorize answered HTTP 401 for Bearer {token}")

    monkeypatch.setattr("engine.feed.recorder.record_frames", fake_record_frames)
    return seen


def _record(tmp_path: Path, *extra: str) -> tuple[Result, str]:
    return _invoke(["feed", "record", "--out", str(tmp_path / "x.frames"), "--key", "NSE_EQ|INE002A01018",
                    "--api-url", "http://127.0.0.1:9", *extra])


@pytest.mark.usefixtures("no_tokens")
def test_feed_record_refuses_a_token_in_argv(tmp_path: Path, recorded: dict[str, Any]) -> None:
    result, output = _record(tmp_path, "--token", UPSTOX_TOKEN)
    assert result.exit_code == 2
    assert "--token is not accepted" in output and "UPSTOX_ACCESS_TOKEN" in output
    assert UPSTOX_TOKEN not in result.output
    assert recorded == {}


@pytest.mark.usefixtures("no_tokens")
def test_feed_record_without_a_token_names_both_sources(
    tmp_path: Path, recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.feed_cmd._token_from_secret_block", lambda: None)
    result, output = _record(tmp_path)
    assert result.exit_code == 2
    assert "UPSTOX_ACCESS_TOKEN" in output and "upstox-access-token" in output
    assert recorded == {}


@pytest.mark.usefixtures("no_tokens")
def test_feed_record_reads_the_token_from_the_environment_and_never_prints_it(
    tmp_path: Path, recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("UPSTOX_ACCESS_TOKEN", UPSTOX_TOKEN)
    monkeypatch.setattr("cli.feed_cmd._token_from_secret_block", lambda: pytest.fail("the environment comes first"))
    result, output = _record(tmp_path)
    assert recorded == {"token": UPSTOX_TOKEN}
    assert result.exit_code == 2 and "recording failed: authorize answered HTTP 401" in output
    assert UPSTOX_TOKEN not in result.output
    assert caplog.records and all(UPSTOX_TOKEN not in record.getMessage() for record in caplog.records)


@pytest.mark.usefixtures("no_tokens")
def test_feed_record_falls_back_to_the_prefect_secret_block(
    tmp_path: Path, recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cli.feed_cmd._token_from_secret_block", lambda: UPSTOX_TOKEN)
    result, _ = _record(tmp_path)
    assert recorded == {"token": UPSTOX_TOKEN}
    assert UPSTOX_TOKEN not in result.output


@pytest.mark.usefixtures("no_tokens")
def test_feed_record_reports_an_unreadable_secret_block(
    tmp_path: Path, recorded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> str:
        raise ConnectionError("Prefect API at http://127.0.0.1:9/api unreachable")

    monkeypatch.setattr("cli.feed_cmd._token_from_secret_block", unreachable)
    result, output = _record(tmp_path)
    assert result.exit_code == 2
    assert "upstox-access-token could not be read" in output and "unreachable" in output
    assert recorded == {}


def test_the_standalone_upstox_sandbox_takes_its_token_from_the_environment_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from engine.brokers.upstox import sandbox

    with pytest.raises(SystemExit):
        sandbox.main(["--token", "argv-token-123456"], environ={})
    with pytest.raises(SystemExit) as missing:
        sandbox.main([], environ={})
    assert missing.value.code == 2
    assert "set UPSTOX_ACCESS_TOKEN" in capsys.readouterr().err
