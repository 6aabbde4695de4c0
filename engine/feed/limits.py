"""Upstox Market Data Feed V3 subscription limits, enforced before anything is sent.

Source: upstox.com/developer/api-documentation/v3/get-market-data-feed, "Connection and Subscription Limits".
The individual limit applies while a connection holds keys in one mode only; as soon as keys are held in more
than one mode, every mode is capped at its (lower) combined limit. `full_d30` (30-level depth, Upstox Plus) is
capped at 50 keys in either case. Exceeding a limit raises `SubscriptionLimitError`: nothing is truncated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModeLimit:
    individual: int
    combined: int


UPSTOX_V3_LIMITS: dict[str, ModeLimit] = {
    "ltpc": ModeLimit(individual=5000, combined=2000),
    "option_greeks": ModeLimit(individual=3000, combined=2000),
    "full": ModeLimit(individual=2000, combined=1500),
    "full_d30": ModeLimit(individual=50, combined=50),
}


class SubscriptionLimitError(ValueError):
    """A subscription would exceed Upstox's documented per-mode key limit (nothing was sent or changed)."""


class UnknownModeError(ValueError):
    """A subscription mode outside ltpc / full / option_greeks / full_d30."""


def check_mode(mode: str) -> str:
    if mode not in UPSTOX_V3_LIMITS:
        raise UnknownModeError(f"unknown feed mode {mode!r}; allowed: {', '.join(UPSTOX_V3_LIMITS)}")
    return mode


def check_limits(keys_by_mode: Mapping[str, Iterable[str]], limits: Mapping[str, ModeLimit] = UPSTOX_V3_LIMITS) -> None:
    """Raise `SubscriptionLimitError` if the would-be subscription set breaks a limit."""
    counts = {mode: len(set(keys)) for mode, keys in keys_by_mode.items()}
    counts = {mode: n for mode, n in counts.items() if n}
    combined = len(counts) > 1
    for mode, count in sorted(counts.items()):
        limit = limits[check_mode(mode)]
        cap = limit.combined if combined else limit.individual
        if count > cap:
            kind = "combined (more than one mode subscribed)" if combined else "individual"
            raise SubscriptionLimitError(
                f"{count} instrument keys in mode {mode!r} exceed Upstox's {kind} limit of {cap}; "
                f"current request refused, nothing was truncated (modes: {counts})"
            )
