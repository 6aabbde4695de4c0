"""The live session: feed (replayed or live Upstox) → TradingEngine, until the market closes.

    LiveSession.open()          broker + reconciliation, universe plus the instruments of open positions
                                outside it (watched, never entered), indicators (pre-open metadata),
                                strategy, TradingEngine.resume() from the database, the feed client
                                (and, for a replayed day, the in-process replay server on the same clock)
    stream_until_close()        one long-running coroutine: ticks flow into the engine until the close
    run_entry_window()          waits for the entry window on the clock and executes it (separately
                                awaitable, so an orchestrator can make it its own task)
    close()                     checkpoint, stop the feed, release the broker. Exits (GTTs) are NOT
                                cancelled: open positions stay protected at the broker.

A replayed day runs in LOCKSTEP by default: a `VirtualClock` driven by the in-process replay
server, which moves time only once the engine has processed every frame sent and whatever sleeps on
the clock (the entry window) has run at its time, so a replayed day is deterministic and runs as
fast as the CPU allows; the engine runs stepped (each callback handles its events and the broker
answers they lead to before it returns). An explicit `speed` (or `lockstep=False`) paces it
instead: simulated time at speed× the wall clock, as a live feed would be; there, as on the live
feed, the engine runs concurrently (`engine.trading.owner`): a callback only queues its event, and
a slow broker answer never holds up the feed.

Re-running a session resumes: the engine rebuilds its state from the database and the order
journal never sends an order twice (entry ids are deterministic per day and instrument).
Cancellation and SIGTERM (`install_signal_handlers`) end the stream gracefully through `close()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.brokers.base import Broker
from engine.brokers.factory import make_broker
from engine.brokers.login import TokenProvider
from engine.calendar import TradingSession
from engine.clock import Clock, LiveClock, Lockstep, ReplayClock, VirtualClock
from engine.data.daybars import with_exchange_ohlc
from engine.execution.manager import OrderManager
from engine.feed.client import FeedState, MarketDataClient
from engine.feed.replay import FaultPlan, ReplayServer
from engine.indicators.metadata import build_metadata, read_metadata
from engine.indicators.multitimeframe import InstrumentIndicators
from engine.models import Instrument, MarketStatus, Tick
from engine.notify import Channel, Notifier, Outbox, default_channels
from engine.portfolio.charges import ChargeCalculator
from engine.portfolio.positions import book_sold_by_hand
from engine.session import day as day_work
from engine.session.stages import COMPLETED, INTERRUPTED, LIVE_SESSION, RUNNING, TradingDayContext, record_stage
from engine.settings import load_credentials
from engine.strategy import load_strategy
from engine.trader import TradingEngine

log = logging.getLogger(__name__)

REPLAY_TOKEN = "replay-session-token"  # the in-process replay server accepts this bearer token
REPLAY_LEAD = timedelta(minutes=2)  # a replayed day's clock starts this long before the open
ENTRY_POLL = timedelta(seconds=60)  # while a window is open, new candidates are considered this often
FEED_SEGMENT = "NSE_EQ"
REPLAY_WATCHDOG_SECONDS = 300.0
# In lockstep time waits for the consumer, so a slow machine never looks like a silent feed: the watchdog only has
# to outlast the gap between derived ticks (43 s, every instrument at once).
LOCKSTEP_WATCHDOG_SECONDS = 60.0
ENGINE_DRAIN_SECONDS = 30.0  # at close, how long broker calls under way may take to answer
NOTIFY_DRAIN_SECONDS = 15.0  # at close, how long the queued notifications may take to go out


@dataclass
class SessionStats:
    ticks: int = 0
    batches: int = 0
    market_status: str = ""
    entry_calls: int = 0
    entries_approved: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    faults_injected: dict[str, int] = field(default_factory=dict)  # a chaos replay: faults by kind (replay server)
    recovery: dict[str, dict[str, float | int]] = field(default_factory=dict)  # per fault kind (feed client)
    entry_polls: list[datetime] = field(default_factory=list)  # when the entry window executed
    feed_notes: list[str] = field(default_factory=list)  # feed outages the trading could not be shielded from


class FeedTokenExpired(RuntimeError):
    """The feed's access token was rejected (HTTP 401/403): streaming stopped."""


class LiveSession:
    def __init__(
        self,
        context: TradingDayContext,
        clock: Clock,
        broker: Broker,
        orders: OrderManager,
        engine: TradingEngine,
        instrument_keys: list[str],
        feed_url: str,
        feed_token: Callable[[], str],
        replay_server: ReplayServer | None = None,
        lockstep: Lockstep | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        if context.session is None:
            raise ValueError(f"no trading session on {context.day}: {context.skip_reason}")
        self.context = context
        self.session: TradingSession = context.session
        self.clock = clock
        self.broker = broker
        self.orders = orders
        self.engine = engine
        self.instrument_keys = instrument_keys
        self.replay_server = replay_server
        self.lockstep = lockstep
        self.outbox = outbox  # trade notifications, scanned from the database every minute
        self.stats = SessionStats()
        feed_settings = context.settings.feed
        self.feed = MarketDataClient(
            api_url=feed_url,
            token_provider=feed_token,
            clock=clock,
            calendar=context.calendar,
            on_ticks=self._on_ticks,
            on_market_status=self._on_market_status,
            # Replayed ticks come from 5-minute bars (several per bar, not every second): a silent
            # minute is normal there, so the watchdog waits longer on a replay.
            watchdog_seconds=max(feed_settings.watchdog_seconds,
                                 LOCKSTEP_WATCHDOG_SECONDS if lockstep is not None else REPLAY_WATCHDOG_SECONDS)
            if replay_server is not None
            else feed_settings.watchdog_seconds,
            reconnect_max_seconds=feed_settings.reconnect_max_seconds,
            backoff_seed=0 if lockstep is not None else None,  # lockstep: the same reconnects in every run
            backfill_from=self.session.open,  # a late start or a retry backfills the day from the open
            on_raw_frame=lockstep.frame_received if lockstep is not None else None,
        )
        self._last_decision: dict[str, tuple[bool, str]] = {}  # per symbol, so a repeated rejection logs once
        self.streaming_done = asyncio.Event()
        self._closing: asyncio.Future[dict[str, Any]] | None = None
        self._stop_requested = ""
        self._stop_task: asyncio.Future[None] | None = None

    # ---- construction ----------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        context: TradingDayContext,
        *,
        replay: bool | None = None,
        speed: float | None = None,
        clock: Clock | None = None,
        lockstep: bool | None = None,
        feed_token_loader: Callable[[], str | None] | None = None,
        notifiers: Sequence[Channel] | None = None,
    ) -> LiveSession:
        """Everything the session needs, resumed from the database. `replay` (default: the
        `feed.source` setting) replays the day from the Parquet store: in lockstep (the default without a `speed`,
        unless `clock` is not a VirtualClock; `lockstep` decides explicitly), else paced on a simulated
        clock at `speed` (default `feed.replay_speed`). Otherwise the live Upstox feed on the real clock, its
        token re-read on every reconnect from `feed_token_loader` (a Secret block reader the flow passes),
        the environment or `.env`, so a token renewed with `autotrader login` is picked up mid-session.
        Trade notifications go to `notifiers` (default: the `notify.webhook_url` webhook, if set)."""
        session = context.session
        if session is None:
            raise ValueError(f"no trading session on {context.day}: {context.skip_reason}")
        settings = context.settings
        replay = settings.feed.source == "replay" if replay is None else replay
        if lockstep is None:
            lockstep = speed is None and (clock is None or isinstance(clock, VirtualClock))
        in_lockstep: Lockstep | None = None
        if replay and lockstep:
            if clock is not None and not isinstance(clock, VirtualClock):
                raise ValueError(f"a lockstep replay drives its own VirtualClock, not {type(clock).__name__}")
            in_lockstep = Lockstep(clock or VirtualClock(session.open - REPLAY_LEAD))
            clock = in_lockstep.clock
        elif clock is None:
            if replay:
                clock = ReplayClock(session.open - REPLAY_LEAD, speed or settings.feed.replay_speed)
            else:
                clock = LiveClock()
        held = day_work.held_positions(context)
        instruments, watch_only = _session_instruments(context, held)
        indicators = _indicators(context, [i.symbol for i in instruments])
        _watch_without_history(context, instruments, held, indicators)
        instruments = [i for i in instruments if i.symbol in indicators]
        if replay:
            _check_replayable(context, [i.symbol for i in instruments])
        broker = make_broker(settings, clock=clock, instruments=instruments, db=context.db, replay=replay)
        await broker.connect()
        replay_server: ReplayServer | None = None
        try:
            orders = OrderManager(broker, context.db, clock, trading_day=context.day)
            reconciled = await orders.reconcile()
            book_sold_by_hand(context.db, ChargeCalculator.from_settings(settings, trading_day=context.day),
                              {i.instrument_key: i for i in instruments}, reconciled, clock.now(), context.day)
            log.info("reconciled %s with the broker: %s", context.day, reconciled)
            engine = TradingEngine(
                settings, clock, instruments, indicators, load_strategy(settings), orders, context.db, context.day,
                broker, session=session, concurrent=in_lockstep is None, watch_only=watch_only,
            )
            await engine.resume()
            keys = [i.instrument_key for i in instruments]
            if replay:
                replay_server = await _start_replay_server(context, clock, in_lockstep)
                api_url, token_provider = replay_server.api_url, _constant(REPLAY_TOKEN)
            else:
                api_url = load_credentials().upstox_api_url
                token_provider = TokenProvider("UPSTOX_ACCESS_TOKEN", loader=feed_token_loader)

            notifier = Notifier(context.db, default_channels(settings) if notifiers is None else notifiers, clock,
                                settings.notify.timeout_seconds)
            outbox = Outbox(notifier, context.db, context.day, replay=replay, clock=clock)
            live = cls(context, clock, broker, orders, engine, keys, api_url, token_provider,
                       replay_server, in_lockstep, outbox)
            record_stage(context.db, context.day, LIVE_SESSION, RUNNING, clock,
                         {"instruments": len(keys), "replay": replay, "broker": broker.name,
                          "lockstep": in_lockstep is not None})
            return live
        except BaseException:
            # open-live-session retries this: leave no broker connection or replay server behind.
            if replay_server is not None:
                with contextlib.suppress(Exception):
                    await replay_server.stop()
            with contextlib.suppress(Exception):
                await broker.close()
            raise

    # ---- callbacks -------------------------------------------------------------------------------

    def _holding_time(self) -> contextlib.AbstractContextManager[None]:
        """In lockstep, time does not move while this runs (unless it sleeps on the clock)."""
        return self.lockstep.clock.hold() if self.lockstep is not None else contextlib.nullcontext()

    async def _on_ticks(self, ticks: list[Tick]) -> None:
        self.stats.ticks += len(ticks)
        self.stats.batches += 1
        # A frame's ticks come in protobuf map order, which differs between processes (upb seeds its
        # hash per process): a fixed order makes fills, their ids and ties the same in every run.
        ticks = sorted(ticks, key=_tick_order)
        with self._holding_time():
            await self.engine.on_ticks(ticks)
        if self.outbox is not None:
            self.outbox.poll()

    async def _on_market_status(self, statuses: dict[str, MarketStatus]) -> None:
        status = statuses.get(FEED_SEGMENT)
        if status is None:
            return
        self.stats.market_status = status.value
        log.info("market status %s: %s", FEED_SEGMENT, status.value)
        with self._holding_time():
            await self.engine.on_market_status(status)

    # ---- the two long-running parts --------------------------------------------------------------

    async def stream_until_close(self) -> dict[str, Any]:
        """Stream until the session's close on the clock (or `request_stop`), then settle the day."""
        try:
            if isinstance(self.clock, ReplayClock):
                self.clock.run()
            if self.clock.now() < self.session.close and not self._stop_requested:
                await self.feed.subscribe(self.instrument_keys, self.context.settings.feed.mode)
                state = await self.feed.run(until=self.session.close)
                log.info("feed ended %s: %s", state.value, self.feed.stats)
                if state is FeedState.TOKEN_EXPIRED:
                    # Fail the stage (and alert); a retry re-authorizes with the token of that moment.
                    raise FeedTokenExpired(f"the market data token was rejected: {self.feed.stats.last_error}")
            self._save_day_bars()  # before end_of_day rolls the forming daily bars into history
            summary = await self.engine.end_of_day()
        except asyncio.CancelledError:
            # Cancelled (a Prefect cancellation arrives as this, SIGTERM too): close here, as the
            # caller's own cleanup may not get to run; exits stay at the broker.
            self._stop_requested = self._stop_requested or "cancelled"
            await asyncio.shield(self.close())
            raise
        # On another error the entry window keeps waiting: a retry of this call resumes the stream.
        self.streaming_done.set()
        result = summary.as_dict()
        self._feed_figures()
        result.update(ticks=self.stats.ticks, feed_state=self.feed.state.value,
                      reconnects=self.feed.stats.reconnects, stopped_early=self._stop_requested or None,
                      faults_injected=self.stats.faults_injected, recovery=self.stats.recovery,
                      feed_notes=self.stats.feed_notes)
        record_stage(self.context.db, self.context.day, LIVE_SESSION, RUNNING, self.clock,
                     {"streamed": True, "ticks": self.stats.ticks})
        return result

    def _feed_figures(self) -> None:
        """Faults injected (a chaos replay), recovery per fault kind, and a note for each outage the trading could
        not be shielded from: an entry-window run while the feed was down (decided on stale prices), or the close
        before the feed recovered (the day's last minutes never seen)."""
        feed = self.feed.stats
        self.stats.recovery = feed.recovery_figures()
        if self.replay_server is not None:
            self.stats.faults_injected = dict(self.replay_server.injected)
        self.stats.feed_notes = [
            f"the entry window ran at {poll:%H:%M} while the feed was down: its decisions saw stale prices"
            for poll in self.stats.entry_polls if feed.down_at(poll)
        ] + [
            f"the close came before the feed recovered from a {kind} at {at:%H:%M:%S}: the last minutes went unseen"
            for kind, at in self.feed.unrecovered()
        ]
        for note in self.stats.feed_notes:
            log.warning("feed outage: %s", note)

    def _save_day_bars(self) -> None:
        """The day's daily bar of each instrument as built from its ticks, with the feed's own day open/high/low
        (a full-mode tick's exchange OHLC), for post-close."""
        bars = {}
        keys = {instrument.symbol: key for key, instrument in self.engine.instruments.items()}
        for symbol, indicators in self.engine.indicators.items():
            daily = indicators.snapshot().daily
            if daily.bar_start is not None and daily.bar_start.date() == self.context.day:
                last_tick = self.feed.last_tick(keys.get(symbol, ""))
                open_, high, low = with_exchange_ohlc(daily.open, daily.high, daily.low, last_tick)
                bars[symbol] = (open_, high, low, daily.close, daily.volume)
        if bars:
            day_work.save_session_bars(self.context, bars)

    async def run_entry_window(self) -> dict[str, Any]:
        """Wait for the entry window on the clock; while it is open, execute it every ENTRY_POLL
        (new candidates may appear); return the decisions. Returns early when streaming ends."""
        window = self.engine.window
        while not self.streaming_done.is_set():
            now = self.clock.now()
            opens = window.next_open(now, self.session)
            if opens is None:
                break
            if opens > now:
                await self.clock.sleep_until_or(opens, self.streaming_done)
                continue
            with self._holding_time():
                decisions = await self.engine.execute_entry_window()
            self.stats.entry_calls += 1
            self.stats.entry_polls.append(now)
            for decision in decisions:
                record = {
                    "symbol": decision.setup.symbol, "approved": decision.approved,
                    "quantity": decision.quantity, "reason": decision.reason,
                }
                self.stats.decisions.append(record)
                self.stats.entries_approved += int(decision.approved)
                if self._last_decision.get(decision.setup.symbol) != (decision.approved, decision.reason):
                    self._last_decision[decision.setup.symbol] = (decision.approved, decision.reason)
                    log.info("entry decision %s", record, extra={"instrument_key": decision.setup.instrument_key})
            await self.clock.sleep_until_or(self.clock.now() + ENTRY_POLL, self.streaming_done)
        return {"entry_calls": self.stats.entry_calls, "approved": self.stats.entries_approved,
                "decisions": self.stats.decisions}

    # ---- shutdown --------------------------------------------------------------------------------

    async def request_stop(self, reason: str = "stop requested") -> None:
        """Graceful stop (SIGTERM, cancellation): the stream ends, the day is settled and closed."""
        self._stop_requested = reason
        log.warning("live session stopping: %s", reason)
        await self.feed.stop()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT → `request_stop` (for standalone runs; Prefect handles its own signals)."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self._stop_on_signal, signum)

    def _stop_on_signal(self, signum: int) -> None:
        self._stop_task = asyncio.ensure_future(self.request_stop(signal.Signals(signum).name))

    async def close(self) -> dict[str, Any]:
        """Idempotent and safe to call concurrently (every caller gets the one result): stop the
        feed and the replay server, release the broker, checkpoint the stage. GTT exits stay at the
        broker, so open positions remain protected while we are down."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        return await asyncio.shield(self._closing)

    async def _close(self) -> dict[str, Any]:
        done_streaming = self.streaming_done.is_set()
        if not done_streaming:  # a stream still running reports that it was stopped early
            self._stop_requested = self._stop_requested or "closed"
        self.streaming_done.set()  # ends a waiting entry window
        with contextlib.suppress(Exception):
            await self.feed.stop()
        if self.engine.concurrent:  # broker calls under way finish (and are journaled) before the broker goes
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.engine.drain(), ENGINE_DRAIN_SECONDS)
        if self.outbox is not None:  # after the drain: the day's last fills are rows by now
            await self.outbox.close(NOTIFY_DRAIN_SECONDS)
        if self.replay_server is not None:
            with contextlib.suppress(Exception):
                await self.replay_server.stop()
        with contextlib.suppress(Exception):
            await self.broker.close()
        finished = self.clock.now() >= self.session.close and not self._stop_requested
        status = COMPLETED if finished and done_streaming else INTERRUPTED
        open_positions = len(self.engine.positions.open)
        record_stage(self.context.db, self.context.day, LIVE_SESSION, status, self.clock,
                     {"ticks": self.stats.ticks, "open_positions": open_positions,
                      "entries_approved": self.stats.entries_approved})
        return {"status": status, "open_positions": open_positions, "ticks": self.stats.ticks}


# ---- helpers -------------------------------------------------------------------------------------


def _tick_order(tick: Tick) -> tuple[int, str]:
    return tick.ltt_ms, tick.instrument_key


def _constant(value: str) -> Callable[[], str]:
    def provide() -> str:
        return value

    return provide


def _session_instruments(context: TradingDayContext, held: dict[str, str]) -> tuple[list[Instrument], frozenset[str]]:
    """The universe, then every instrument of an open position (`held`) outside it (subscribed, marked
    and protected, never entered: returned as the second value); one missing from the day's master
    still streams under its instrument key."""
    by_symbol = {i.symbol: i for i in day_work.day_instruments(context)}  # the pre-open's refreshed master
    universe_symbols = day_work.universe_symbols(context) or day_work.refresh_universe(context)
    symbols = day_work.with_held_symbols(universe_symbols, held.values())
    instruments = [by_symbol[s] for s in symbols if s in by_symbol]
    universe = {by_symbol[s].instrument_key for s in universe_symbols if s in by_symbol}
    known = {i.instrument_key for i in instruments}
    for key, symbol in held.items():
        if key not in known:
            log.warning("open position %s (%s) is not in the day's instrument master: watched by its key",
                        symbol, key)
            instruments.append(Instrument(key, symbol, ""))
    return instruments, frozenset(i.instrument_key for i in instruments) - universe


def _indicators(context: TradingDayContext, symbols: list[str]) -> dict[str, InstrumentIndicators]:
    """The day's pre-open metadata where it has the symbol and fits (indicator periods); the others
    built now from the history."""
    path = day_work.premarket_metadata_path(context)
    config = day_work.indicator_config(context)
    found: dict[str, InstrumentIndicators] = {}
    if path.exists():
        try:
            metadata = read_metadata(path)
            if metadata.config == config:
                found = {s: metadata.instruments[s] for s in symbols if s in metadata.instruments}
            else:
                log.warning("metadata %s does not fit the session (indicator periods); rebuilding", path)
        except ValueError as error:
            log.warning("metadata %s unusable (%s); rebuilding", path, error)
    missing = [s for s in symbols if s not in found]
    if missing:
        built = build_metadata(day_work.bar_store(context), missing, asof=context.day - timedelta(days=1),
                               config=config)
        found.update(built.instruments)
    return {s: found[s] for s in symbols if s in found}


def _watch_without_history(context: TradingDayContext, instruments: list[Instrument], held: dict[str, str],
                           indicators: dict[str, InstrumentIndicators]) -> None:
    """An open position's instrument with no daily history still gets (empty) indicators: a universe
    instrument without history is dropped, but a position is marked and guarded from its ticks."""
    unwatched = [i for i in instruments if i.instrument_key in held and i.symbol not in indicators]
    config = day_work.indicator_config(context) if unwatched else None
    for instrument in unwatched:
        log.warning("no daily history for %s: its open position is watched from its ticks alone", instrument.symbol)
        indicators[instrument.symbol] = InstrumentIndicators(instrument.symbol, config, instrument.instrument_key)


class NothingToReplay(ValueError):
    """The replayed day has no 5-minute bars in the store."""


def _check_replayable(context: TradingDayContext, symbols: list[str]) -> None:
    if not any(len(day_work.day_bars(context, symbol)) for symbol in symbols[:5]):
        raise NothingToReplay(
            f"no 5-minute bars for {context.day} under {context.settings.data_dir}/bars: a replay needs a day "
            "of the store (the shipped data covers 2024-06-03 .. 2024-06-28); for live trading set "
            "AUTOTRADER_FEED__SOURCE=upstox"
        )


async def _start_replay_server(context: TradingDayContext, clock: Clock, lockstep: Lockstep | None) -> ReplayServer:
    """The day's replay (derived ticks inside each real 5-minute bar) on the session's own clock; in
    lockstep the server drives that clock."""
    feed = context.settings.feed
    faults = FaultPlan.chaos(feed.replay_chaos, feed.replay_chaos_seed, context.day) if feed.replay_chaos else None
    server = ReplayServer(data_dir=context.settings.data_dir, day=context.day, token=REPLAY_TOKEN,
                          clock=None if lockstep is not None else clock, lockstep=lockstep, faults=faults)
    await server.start()
    return server
