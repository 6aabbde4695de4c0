"""Bench: order acknowledged -> exit GTTs placed, UpstoxBroker on the real upstox-python-sdk against
the loopback Upstox sandbox (API host and order host on two ports).

One iteration = `place_order` (1 request) + `place_exit_oco` (GET all GTTs to reuse live legs, then
two SINGLE GTTs: 3 requests). The sandbox times its own handling of every request, so the adapter's
overhead (SDK, urllib3, thread hops, parsing) = total time minus the server's time. The GTT list
grows by two per iteration, as a busy day's would.

Reference: issue 6's target for the Kite path is p99 < 20 ms of our own overhead.
Run: `.venv/bin/python bench/bench_upstox.py [--orders 300] [--warmup 20]`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import load_per_core, print_figures
from engine.brokers.upstox import UpstoxBroker
from engine.brokers.upstox.config import MAX_ORDERS_PER_SECOND
from engine.brokers.upstox.sandbox import UpstoxSandbox
from engine.clock import LiveClock
from engine.execution import exit_request_for, make_client_order_id
from engine.models import Instrument, OrderIntent, OrderPurpose, Side

DAY = date(2024, 6, 4)
ITERATION_SPACING_SECONDS = 2 / MAX_ORDERS_PER_SECOND  # each order API is called at most twice an iteration


async def run(orders: int, warmup: int) -> dict[str, list[float]]:
    clock = LiveClock()
    instruments = [Instrument(f"NSE_EQ|BENCH{i:04d}", f"BENCH{i}", f"BENCH{i}") for i in range(orders + warmup)]
    # A registered algo's rate (50/s per order API), and iterations spaced so that pacing never waits inside the
    # timed part: the figures are our overhead, not the broker's rate limit.
    with UpstoxSandbox(clock=clock, orders_per_second=MAX_ORDERS_PER_SECOND) as sandbox:
        config = sandbox.config(sandbox.listen(), orders_per_second=MAX_ORDERS_PER_SECOND)
        broker = UpstoxBroker(config, clock, instruments=instruments)
        await broker.connect()
        totals: list[float] = []
        servers: list[float] = []
        for i, instrument in enumerate(instruments):
            await asyncio.sleep(ITERATION_SPACING_SECONDS)
            sandbox.set_last_price(instrument.instrument_key, 100.0)
            logged_before = len(sandbox.request_log)
            started = time.perf_counter()
            intent = OrderIntent(make_client_order_id(DAY, f"bench-{i}"), instrument, Side.BUY, 10)
            order = await broker.place_order(intent)
            tag = make_client_order_id(DAY, f"bench-{i}", OrderPurpose.EXIT)
            await broker.place_exit_oco(
                exit_request_for(instrument, 10, stop=98.0, target=104.0, last_price=100.0, tag=tag)
            )
            total = time.perf_counter() - started
            assert order.broker_order_id
            if i >= warmup:
                totals.append(total * 1000)
                servers.append(sum(entry.seconds for entry in sandbox.request_log[logged_before:]) * 1000)
        await broker.close()
    return {"total": totals, "server": servers, "ours": [t - s for t, s in zip(totals, servers, strict=True)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    figures = asyncio.run(run(args.orders, args.warmup))
    print(
        f"bench_upstox: {args.orders} x (entry acknowledged + 2 GTT legs placed, 4 requests), loopback Upstox "
        f"sandbox, load per core {load_per_core():.2f} (p99 suffers above ~1)"
    )
    print_figures(figures, (("total", "total"), ("server", "server handling"), ("ours", "our overhead")))


if __name__ == "__main__":
    main()
