"""One queue, one owner: the event loop of the trading engine.

Everything that changes trading state is an event on one asyncio queue, handled by one owner at a
time; broker calls are commands (`issue`) whose results come back as events. Two ways to run:

- stepped (`concurrent=False`: backtests, lockstep replays, tests): whoever awaits `drain()` is the
  owner until the queue is empty, and a command runs in place, its answer handled at once. Events
  are handled in a fixed order, so runs are deterministic.
- concurrent (`concurrent=True`: a live feed): a consumer task handles events as they arrive and
  each command runs as its own task, posting its answer; a slow broker delays only its own answer,
  never the ticks. `drain()` waits until nothing is queued or under way."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from engine.brokers.base import BrokerError
from engine.trading.events import Answer, Command, Event

log = logging.getLogger(__name__)

T = TypeVar("T")


class EventOwner:
    """`opening`: the event handled before any other (posted with the first input, or by `open`)."""

    def __init__(self, *, concurrent: bool, opening: Event) -> None:
        self.concurrent = concurrent
        self._opening = opening
        self._opened = False
        self._queue: deque[Event] = deque()  # never awaited: `post` starts the consumer, `drain` owns it
        self._consumer: asyncio.Task[None] | None = None
        self._commands: set[asyncio.Task[None]] = set()
        self._owned = False  # an owner is handling events right now
        self._settled = asyncio.Event()
        self.broker_errors = 0
        self.command_errors = 0  # anything else that failed: logged, counted, never the end of a session

    async def _handle(self, event: Event) -> None:
        raise NotImplementedError

    def _broker_failed(self, error: BrokerError) -> None:
        """A command's broker call failed (after the order manager's own retries)."""

    def post(self, event: Event) -> None:
        """Queue an event (after the opening one); in concurrent mode the consumer task handles it."""
        if not self._opened:
            self._opened = True
            self._queue.append(self._opening)
        self._queue.append(event)
        if self.concurrent and (self._consumer is None or self._consumer.done()):
            self._consumer = asyncio.get_running_loop().create_task(self._own())

    @property
    def idle(self) -> bool:
        return not self._queue and not self._owned and not self._commands

    async def open(self) -> None:
        """Post the opening event (again, if an input brought it already) and handle it now."""
        self._opened = True
        self.post(self._opening)
        await self.drain()

    async def drain(self) -> None:
        """Return once every event posted so far, and every answer it led to, has been handled."""
        if not self.concurrent and not self._owned:
            await self._own()
            return
        while not self.idle:
            self._settled.clear()
            await self._settled.wait()

    async def _request(self, make: Callable[[asyncio.Future[T]], Event], *, drain: bool = True) -> T:
        """Post the event `make` builds around a reply future and wait for the reply (after draining the
        queue, or, with `drain=False`, after settling it as an input does)."""
        reply: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.post(make(reply))
        await (self.drain() if drain else self._settle())
        return await reply

    async def _settle(self) -> None:
        """After posting an input: stepped, handle it now unless an owner is at work (it will)."""
        if not self.concurrent and not self._owned:
            await self._own()

    async def _own(self) -> None:
        self._owned = True
        try:
            while self._queue:
                await self._dispatch(self._queue.popleft())
        finally:
            self._owned = False
            self._settled.set()

    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, Answer) and event.error is not None:
            if isinstance(event.error, BrokerError):
                self.broker_errors += 1
                self._broker_failed(event.error)
            else:
                self.command_errors += 1
        try:
            await self._handle(event)
        except Exception as error:  # a bug must not end a session: logged, counted, the next event goes on
            self.command_errors += 1
            log.exception("handling %s failed", type(event).__name__)
            reply = getattr(event, "reply", None)
            if isinstance(reply, asyncio.Future) and not reply.done():
                reply.set_exception(error)

    async def issue(self, command: Command) -> None:
        """Run a broker call: stepped, in place (its answer handled before this returns); concurrent,
        as a task whose answer is posted."""
        if not self.concurrent:
            await self._dispatch(await _run(command))
            return
        task = asyncio.get_running_loop().create_task(self._run_and_post(command))
        self._commands.add(task)
        task.add_done_callback(self._command_done)

    async def _run_and_post(self, command: Command) -> None:
        self.post(await _run(command))

    def _command_done(self, task: asyncio.Task[None]) -> None:
        self._commands.discard(task)
        self._settled.set()


async def _run(command: Command) -> Event:
    try:
        return await command.call()
    except Exception as error:  # the broker's (or a bug's): the answer carries it to the owner
        log.error("%s failed (%s: %s); retried on a later tick", command.what, type(error).__name__, error)
        return command.failed(error)
