"""Bench: signal -> order acknowledged -> GTT placed, against the loopback Kite server.

Each iteration journals an entry intent (write-ahead), sends it with the real `kiteconnect` client,
records the answer, then journals and places a two-leg GTT exit. The Kite sandbox runs in its own
process (as Kite is remote, it does not compete for our GIL) and measures its own
handling time for every request (logged before the answer leaves), so OUR overhead = total time
minus the server's time, split into journal + manager (total minus the broker calls, as the
manager logs them) and SDK + HTTP client (broker calls minus server time, thread hops included).

Target (issue 6): p99 of our overhead < 20 ms.
Run: `.venv/bin/python bench/bench_execution.py [--orders 300] [--warmup 20]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import load_per_core, print_figures
from engine.brokers.zerodha.config import ZerodhaConfig
from engine.brokers.zerodha.execution import ZerodhaBroker
from engine.brokers.zerodha.sandbox import KITE_RULES, KiteSandbox
from engine.clock import LiveClock
from engine.execution import OrderManager, RateLimiter, exit_request_for, make_client_order_id
from engine.models import IST, Instrument, OrderIntent, OrderPurpose, Side
from engine.storage.db import init_db

DAY = date(2024, 6, 4)


class SandboxProcess:
    """The Kite sandbox in its own process, as the real Kite is: it does not share our GIL.
    Controlled by JSON lines over stdin/stdout (`--serve`)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        self.url, self.api_key, self.access_token = self.ask("hello")

    def ask(self, *command: object) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.ask("stop")
        self.process.wait(timeout=10)


def serve() -> None:
    # Kite's 10/s is off here: the client-side limiter is off too, to time our overhead alone.
    with KiteSandbox(clock=LiveClock(), rules=replace(KITE_RULES, orders_per_second=None)) as sandbox:
        for line in sys.stdin:
            command, *args = json.loads(line)
            if command == "hello":
                answer: Any = [sandbox.url, sandbox.api_key, sandbox.access_token]
            elif command == "price":
                sandbox.set_last_price(*args)
                answer = None
            elif command == "handled":
                answer = [[h.path, h.seconds] for h in sandbox.handled]
            else:
                print(json.dumps(None), flush=True)
                return
            print(json.dumps(answer), flush=True)


async def run(orders: int, warmup: int) -> dict[str, list[float]]:
    clock = LiveClock()
    instruments = [Instrument(f"NSE_EQ|BENCH{i:04d}", f"BENCH{i}", f"BENCH{i}") for i in range(orders + warmup)]
    sandbox = SandboxProcess()
    with tempfile.TemporaryDirectory() as folder:
        db = init_db(f"sqlite:///{folder}/bench.db")
        broker = ZerodhaBroker(ZerodhaConfig(sandbox.api_key, sandbox.access_token, sandbox.url), clock,
                               instruments=instruments)
        await broker.connect()
        # The client-side rate limit (10/s) would dominate: it is deliberate waiting, not overhead.
        manager = OrderManager(broker, db, clock, trading_day=DAY,
                               rate_limiter=RateLimiter(clock, [(1_000_000, 1.0)]))
        totals: list[float] = []
        for i, instrument in enumerate(instruments):
            sandbox.ask("price", instrument.symbol, 100.0)
            started = time.perf_counter()
            # the "signal": an intent for a setup
            intent = OrderIntent(make_client_order_id(DAY, f"bench-{i}"), instrument, Side.BUY, 10)
            order = await manager.submit(intent)
            await manager.place_exit(exit_request_for(
                instrument, 10, stop=98.0, target=104.0, last_price=100.0,
                tag=make_client_order_id(DAY, f"bench-{i}", OrderPurpose.EXIT)))
            totals.append((time.perf_counter() - started) * 1000)
            assert order.broker_order_id
        handled = sandbox.ask("handled")
        sandbox.stop()
        # one profile check, then exactly two requests per iteration (no faults, so no retries)
        assert len(handled) == 1 + 2 * len(instruments), len(handled)
        servers = [(handled[1 + 2 * i][1] + handled[2 + 2 * i][1]) * 1000 for i in range(len(instruments))]
        broker_calls = []
        for i in range(len(instruments)):
            # the manager logs each broker call's elapsed time in its RESPONSE events
            events = manager.journal.events(make_client_order_id(DAY, f"bench-{i}")) + manager.journal.events(
                make_client_order_id(DAY, f"bench-{i}", OrderPurpose.EXIT))
            broker_calls.append(sum(json.loads(e.detail_json)["elapsed_ms"] for e in events
                                    if e.kind in ("RESPONSE", "EXIT_RESPONSE")))
        await broker.close()
        db.dispose()
    totals, servers, broker_calls = totals[warmup:], servers[warmup:], broker_calls[warmup:]
    return {
        "total": totals,
        "server": servers,
        "ours": [t - s for t, s in zip(totals, servers, strict=True)],
        "client": [b - s for b, s in zip(broker_calls, servers, strict=True)],
        "journal": [t - b for t, b in zip(totals, broker_calls, strict=True)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    started = datetime.now(IST)
    figures = asyncio.run(run(args.orders, args.warmup))
    print(f"bench_execution: {args.orders} x (entry acknowledged + GTT placed), loopback Kite server, "
          f"started {started:%Y-%m-%d %H:%M:%S %Z}, load per core {load_per_core():.2f} (p99 suffers above ~1)")
    print_figures(figures, (("total", "total"), ("server", "server handling"), ("ours", "our overhead"),
                            ("journal", "  journal + manager"), ("client", "  SDK + HTTP client")))


if __name__ == "__main__":
    main()
