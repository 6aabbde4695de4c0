"""Which real venue a `broker` setting trades like, and that venue's intraday (MIS) cut-off.

`paper` imitates the default venue (Zerodha); each sandbox imitates its venue. The MIS times are the
brokers' published equity auto square-off times (docs/execution.md, "Charges"): an MIS entry window
must end by then, or the position would be squared off by the broker (at a charge) minutes after entry,
and fresh MIS orders are refused after it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import time

DEFAULT_VENUE = "zerodha"
VENUES = ("zerodha", "upstox")
# The last moment an MIS entry makes sense: Zerodha squares equity intraday off from 15:20 and refuses
# fresh MIS orders after it; Upstox squares off at 15:15 and takes no intraday order after 15:12.
MIS_CUTOFF: dict[str, time] = {"zerodha": time(15, 20), "upstox": time(15, 12)}
MIS_CUTOFF_SOURCE = {
    "zerodha": "Zerodha auto-squares equity intraday positions at 15:20 IST and refuses fresh MIS orders after it",
    "upstox": "Upstox auto-squares equity intraday positions at 15:15 IST and takes no intraday order after 15:12",
}


def venue_of(broker: str) -> str:
    """"zerodha" or "upstox": the venue whose charges and rules `broker` follows."""
    venue = broker.removesuffix("-sandbox")
    return venue if venue in VENUES else DEFAULT_VENUE


def mis_window_problem(broker: str, windows: Iterable[str]) -> str | None:
    """Why MIS cannot trade in `windows` ("HH:MM-HH:MM", IST) at `broker`'s venue, or None."""
    venue = venue_of(broker)
    cutoff = MIS_CUTOFF[venue]
    late = [window for window in windows if time.fromisoformat(window[6:]) > cutoff]
    if not late:
        return None
    shown = "paper (charged and ruled as zerodha)" if broker == "paper" else broker
    return (f"execution.product = MIS with broker {shown}: entry window {', '.join(late)} ends after the MIS "
            f"square-off cut-off {cutoff:%H:%M} IST ({MIS_CUTOFF_SOURCE[venue]}); end the entry window by "
            f"{cutoff:%H:%M} or use product CNC")
