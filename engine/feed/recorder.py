"""Record the raw Market Data Feed V3 frames (with their receive times) into a frame file the replay server plays.

The recorder is a `MarketDataClient` whose raw-frame hook writes every binary message as received — before any
decoding, dedupe or backfill, so the file is what the wire carried (malformed frames included). Reconnects work as
in the live client; backfill is off (synthesized ticks are not frames). Format: `engine.feed.framefile`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from engine.clock import Clock
from engine.feed.client import FeedState, MarketDataClient, TokenRejectedError
from engine.feed.framefile import FrameWriter

log = logging.getLogger(__name__)

# A recorder may watch quiet instruments (or a replay whose derived ticks come every ~43 s): a watchdog reconnect
# would only write a fresh snapshot into the file, so it waits longer than the live client's.
RECORDER_WATCHDOG_SECONDS = 120.0


async def record_frames(
    api_url: str,
    token: str,
    instrument_keys: list[str],
    mode: str,
    out_path: Path,
    clock: Clock,
    duration_seconds: float | None = None,
    *,
    watchdog_seconds: float = RECORDER_WATCHDOG_SECONDS,
) -> int:
    """Subscribe `instrument_keys` in `mode` and append every binary frame to `out_path` until `duration_seconds`
    of clock time have passed (or forever if None; cancel the task to end). Returns the number of frames written.

    Raises `SubscriptionLimitError` before connecting if the keys exceed Upstox's limit for `mode`, and
    `TokenRejectedError` if the token is refused (the frames written so far are kept)."""
    if duration_seconds is not None and duration_seconds <= 0:
        raise ValueError(f"duration_seconds must be > 0, got {duration_seconds}")
    with FrameWriter(out_path) as writer:

        async def write(frame: bytes | str, received_at: datetime) -> None:
            if isinstance(frame, str):
                log.warning("text frame not recorded: %.200s", frame)
                return
            writer.write(int(received_at.timestamp() * 1000), frame)

        client = MarketDataClient(
            api_url=api_url, token_provider=lambda: token, clock=clock, on_raw_frame=write, backfill=False,
            watchdog_seconds=watchdog_seconds,
        )
        await client.subscribe(instrument_keys, mode)
        until = clock.now() + timedelta(seconds=duration_seconds) if duration_seconds is not None else None
        state = await client.run(until=until)
        count = writer.count
    log.info("recorded %d frames to %s (%s)", count, out_path, client.stats)
    if state is FeedState.TOKEN_EXPIRED:
        raise TokenRejectedError(f"token rejected after {count} frames: {client.stats.last_error}")
    return count
