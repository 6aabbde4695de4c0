"""`autotrader feed serve` (the Upstox-compatible replay server) and `autotrader feed record` (raw frames to a file).
See docs/feed.md. Tokens never travel in argv (visible in `ps` and shell history) and are never printed: `serve`
takes the token it requires from AUTOTRADER_FEED_SERVE_TOKEN, `record` from UPSTOX_ACCESS_TOKEN or the Prefect
Secret block `upstox-access-token`."""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import date, time
from pathlib import Path

import typer

from cli.common import console, fail

feed_app = typer.Typer(help="Market data: replay server and frame recorder (Upstox Market Data Feed V3).",
                       no_args_is_help=True)

SERVE_TOKEN_VARIABLE = "AUTOTRADER_FEED_SERVE_TOKEN"
UPSTOX_TOKEN_VARIABLE = "UPSTOX_ACCESS_TOKEN"
UPSTOX_TOKEN_BLOCK = "upstox-access-token"
# `--token` is still parsed (hidden) only to refuse it with a pointer to the environment, never to use it.
REFUSED_TOKEN_HELP = "Refused: a token in the command line shows in `ps` and shell history."


def _token_in_argv(variable: str, how: str) -> typer.Exit:
    return fail(f"--token is not accepted: a token in the command line shows in `ps` and in shell history. "
                f"Set {variable} in the environment instead{how}.")


def serve_token(*, required: bool) -> str | None:
    """The token `feed serve --require-token` requires, from AUTOTRADER_FEED_SERVE_TOKEN; None without the flag."""
    if not required:
        return None
    token = os.environ.get(SERVE_TOKEN_VARIABLE, "").strip()
    if not token:
        raise fail(f"--require-token: {SERVE_TOKEN_VARIABLE} is not set (put the token clients must send there)")
    return token


def _times(values: list[str] | None) -> tuple[time, ...]:
    from engine.feed.replay import parse_clock_times

    return parse_clock_times(values or [])


@feed_app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8765, help="Port to bind (0: any free port)."),
    day: str | None = typer.Option(None, "--date", help="Day to replay from the bar store, YYYY-MM-DD."),
    speed: float = typer.Option(100.0, help="Replay speed: simulated seconds per wall second."),
    start: str = typer.Option("09:00", help="Replay clock start, HH:MM[:SS] IST."),
    frames: Path | None = typer.Option(None, help="Replay this recorded frame file instead of a day of bars."),
    data_dir: Path | None = typer.Option(None, help="Folder with bars/ and instruments.parquet (default: settings)."),
    require_token: bool = typer.Option(
        False, "--require-token",
        help=f"Accept only the bearer token in {SERVE_TOKEN_VARIABLE} (default: any non-empty token). Required "
             "to listen beyond loopback.",
    ),
    token: str | None = typer.Option(None, hidden=True, help=REFUSED_TOKEN_HELP),
    drop_at: list[str] | None = typer.Option(None, help="Cut the connection at HH:MM (repeatable)."),
    stall_at: list[str] | None = typer.Option(None, help="Stop sending, keeping the socket, at HH:MM (repeatable)."),
    stall_seconds: float | None = typer.Option(None, help="Stall length in replay seconds (default: until the "
                                               "client goes away)."),
    malformed_at: list[str] | None = typer.Option(None, help="Send a malformed frame at HH:MM (repeatable)."),
    reject_token_at: list[str] | None = typer.Option(None, help="Reject the token from HH:MM on (repeatable)."),
    reject_token: bool = typer.Option(False, help="Reject every token from the start."),
    duplicate_rate: float = typer.Option(0.0, help="Probability that a tick is sent twice."),
    out_of_order_rate: float = typer.Option(0.0, help="Probability that an older tick is re-sent after a newer one."),
    random_drops: int = typer.Option(0, help="Connection drops at seeded random times of the session."),
    random_stalls: int = typer.Option(0, help="Stalls at seeded random times of the session."),
    random_malformed: int = typer.Option(0, help="Malformed frames at seeded random times of the session."),
    seed: int = typer.Option(0, help="Seed of the random faults."),
) -> None:
    """Serve a replayed day over Upstox's V3 feed protocol: authorize, WebSocket feed, intraday candles.
    Ticks are DERIVED from 5-minute bars (inside each bar's real open/high/low/close), not real prints."""
    from engine.feed.client import AUTHORIZE_PATH
    from engine.feed.replay import FaultPlan, ReplayError, ReplayServer
    from engine.listen import ExposedHostError, refuse_exposed_host

    if token is not None:
        raise _token_in_argv(SERVE_TOKEN_VARIABLE, " and pass --require-token")
    try:
        refuse_exposed_host(host, token_required=require_token,
                            remedy=f"pass --require-token with the token in {SERVE_TOKEN_VARIABLE}")
    except ExposedHostError as exc:
        raise fail(str(exc)) from None
    required_token = serve_token(required=require_token)
    if required_token:
        from engine.logging import redact_secrets

        redact_secrets([required_token])  # defence in depth: the server never logs it
    if (day is None) == (frames is None):
        raise fail("give --date YYYY-MM-DD (replay the bar store) or --frames FILE (replay a recording)")
    try:
        replay_day = date.fromisoformat(day) if day else None
        start_time = time.fromisoformat(start)
        faults = FaultPlan(
            drop_at=_times(drop_at), stall_at=_times(stall_at), malformed_at=_times(malformed_at),
            reject_token_at=_times(reject_token_at), reject_token=reject_token, duplicate_rate=duplicate_rate,
            out_of_order_rate=out_of_order_rate, random_drops=random_drops, random_stalls=random_stalls,
            random_malformed=random_malformed, stall_seconds=stall_seconds, seed=seed,
        )
        if data_dir is None and frames is None:
            from engine.settings import load_settings

            data_dir = load_settings().data_dir
        server = ReplayServer(
            data_dir=data_dir, day=replay_day, frames=frames, speed=speed, start=start_time, host=host, port=port,
            token=required_token, faults=faults,
        )
    except (ReplayError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None

    async def run() -> None:
        # ticks are derived in a worker thread before the server listens; the replay clock starts after that
        typer.echo("loading the replay (a few seconds for the full universe)...", err=True)
        await server.start()
        # plain lines (no wrapping): scripts and tests read the URLs from stdout
        typer.echo(f"replaying {server.day} at {speed:g}x from {server.clock.now():%H:%M:%S} IST")
        typer.echo(f"api_url: {server.api_url}")
        typer.echo(f"ws_url: {server.ws_url}")
        accepted = f"required, from {SERVE_TOKEN_VARIABLE}" if required_token else "any non-empty bearer token"
        typer.echo(f"authorize: {server.api_url}{AUTHORIZE_PATH} (token: {accepted})")
        typer.echo("ticks are DERIVED from 5-minute bars, not real trades. Ctrl-C to stop.", err=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(run())
        except OSError as exc:
            raise fail(f"cannot serve on {host}:{port}: {exc}") from None
        except ReplayError as exc:
            raise fail(str(exc)) from None


def _token_from_secret_block() -> str | None:
    """The Prefect Secret block `upstox-access-token`, None when there is no such block. Raises when Prefect's API
    cannot be reached."""
    from tasks.token_blocks import read_secret_block

    return read_secret_block(UPSTOX_TOKEN_BLOCK)


def _upstox_access_token() -> str:
    """UPSTOX_ACCESS_TOKEN (environment or .env), else the Prefect Secret block; a clear error without either."""
    from engine.settings import load_credentials

    secret = load_credentials().upstox_access_token
    token = secret.get_secret_value().strip() if secret is not None else ""
    if token:
        return token
    try:
        token = _token_from_secret_block() or ""
    except Exception as exc:  # Prefect unreachable or misconfigured: say so, without a traceback
        raise fail(f"no access token: {UPSTOX_TOKEN_VARIABLE} is not set and the Prefect Secret block "
                   f"{UPSTOX_TOKEN_BLOCK} could not be read ({type(exc).__name__}: {exc})") from None
    if not token:
        raise fail(f"no access token: set {UPSTOX_TOKEN_VARIABLE} in the environment (or .env), or save it in the "
                   f"Prefect Secret block {UPSTOX_TOKEN_BLOCK}")
    return token


@feed_app.command("record")
def record_command(
    out: Path = typer.Option(..., "--out", help="Frame file to append to."),
    keys: list[str] | None = typer.Option(None, "--key", help="Instrument key to subscribe (repeatable)."),
    all_instruments: bool = typer.Option(False, help="Subscribe every instrument of data/instruments.parquet."),
    mode: str = typer.Option("full", help="ltpc | full | full_d30 | option_greeks"),
    duration: float | None = typer.Option(None, help="Seconds to record (default: until Ctrl-C)."),
    api_url: str | None = typer.Option(None, help="Upstox API base URL (default: UPSTOX_API_URL)."),
    token: str | None = typer.Option(None, hidden=True, help=REFUSED_TOKEN_HELP),
    data_dir: Path | None = typer.Option(None, help="Folder holding instruments.parquet (default: settings)."),
) -> None:
    """Record the raw Market Data Feed V3 frames with their receive times into a frame file that
    `autotrader feed serve --frames FILE` replays. The access token comes from UPSTOX_ACCESS_TOKEN
    (environment or .env), else the Prefect Secret block upstox-access-token."""
    if token is not None:
        raise _token_in_argv(UPSTOX_TOKEN_VARIABLE, f" (or save it in the Prefect Secret block {UPSTOX_TOKEN_BLOCK})")
    try:
        from engine.feed.recorder import record_frames
    except ImportError as exc:
        raise fail(f"feed recording is not available in this build ({exc})") from None
    from engine.clock import LiveClock
    from engine.logging import redact_secrets
    from engine.settings import load_credentials, load_settings

    access_token = _upstox_access_token()
    redact_secrets([access_token])  # from every log record of this process
    instrument_keys = list(keys or [])
    if all_instruments:
        from engine.data.instruments import InstrumentTableError, load_instrument_table

        try:
            table = load_instrument_table(data_dir or load_settings().data_dir)
        except InstrumentTableError as exc:
            raise fail(str(exc)) from None
        instrument_keys += [str(key) for key in table["instrument_key"]]
    if not instrument_keys:
        raise fail("nothing to record: pass --key KEY (repeatable) or --all-instruments")
    url = api_url or load_credentials().upstox_api_url
    try:
        count = asyncio.run(record_frames(url, access_token, instrument_keys, mode, out, LiveClock(), duration))
    except KeyboardInterrupt:
        console.print(f"stopped; frames kept in {out}")
        return
    except Exception as exc:  # a clear message rather than a traceback; frames written so far are kept
        raise fail(f"recording failed: {exc}".replace(access_token, "***")) from None
    console.print(f"recorded {count} frames to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(feed_app, name="feed")
