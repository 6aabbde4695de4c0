"""The notifications and their readable texts. Every text is redacted (a kill or failure reason may
quote a broker's answer) and a replayed day's starts with REPLAY_MARKER."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.secrets import redact, redact_payload

REPLAY_MARKER = "[REPLAY]"

ENTRY = "entry"
EXIT = "exit"
KILL_SWITCH = "kill_switch"
EXIT_FAILED = "exit_failed"
STALE_TOKEN = "stale_token"
SUMMARY = "summary"


@dataclass(frozen=True)
class Notification:
    """One event worth telling the trader. `key` names the event for good (a restart finds the same
    key, so it is sent at most once); `fields` are the structured values beside the text."""

    key: str
    event: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {"text": self.text, "event": self.event, "key": self.key, **self.fields}

    @property
    def subject(self) -> str:
        return f"autotrader: {self.event.replace('_', ' ')}"


def rupees(amount: float, *, signed: bool = False) -> str:
    """₹1,234.50; with `signed`, +₹… or -₹… (P&L)."""
    sign = "-" if amount < 0 else "+" if signed else ""
    return f"{sign}₹{abs(amount):,.2f}"


def _notification(key: str, event: str, text: str, replay: bool, **fields: Any) -> Notification:
    shown = f"{REPLAY_MARKER} {text}" if replay else text
    return Notification(key, event, redact(shown), redact_payload({**fields, "replay": replay}))


def entry_filled(day: date, *, replay: bool, client_order_id: str, symbol: str, quantity: int, price: float,
                 stop: float, target: float) -> Notification:
    text = (f"{day} entry filled: BUY {quantity} {symbol} @ {rupees(price)} "
            f"(stop {rupees(stop)}, target {rupees(target)})")
    return _notification(f"entry:{client_order_id}", ENTRY, text, replay, day=day.isoformat(), symbol=symbol,
                         quantity=quantity, price=price, stop=stop, target=target, client_order_id=client_order_id)


def exit_done(day: date, *, replay: bool, trade_id: int, symbol: str, quantity: int, entry_price: float,
              exit_price: float, net_pnl: float, reason: str) -> Notification:
    text = (f"{day} exit: SELL {quantity} {symbol} @ {rupees(exit_price)} ({reason}), "
            f"net P&L {rupees(net_pnl, signed=True)} (entry {rupees(entry_price)})")
    return _notification(f"exit:{trade_id}", EXIT, text, replay, day=day.isoformat(), symbol=symbol,
                         quantity=quantity, entry_price=entry_price, exit_price=exit_price,
                         net_pnl=round(net_pnl, 2), reason=reason, trade_id=trade_id)


def kill_switch(day: date, *, replay: bool, reason: str, realized_pnl: float) -> Notification:
    text = f"{day} KILL SWITCH: {reason}. No new entries today; exits stay at the broker."
    return _notification(f"kill:{day}", KILL_SWITCH, text, replay, day=day.isoformat(), reason=reason,
                         realized_pnl=round(realized_pnl, 2))


def exit_failed(day: date, *, replay: bool, event_id: int, symbol: str, reason: str, attempts: int) -> Notification:
    text = (f"{day} EXIT NOT PLACED for {symbol} after {attempts} attempt(s): {reason}. "
            "The position is open: check it at the broker.")
    return _notification(f"exit_failed:{event_id}", EXIT_FAILED, text, replay, day=day.isoformat(), symbol=symbol,
                         reason=reason, attempts=attempts, event_id=event_id)


def stale_token(day: date, *, replay: bool, broker: str, problem: str) -> Notification:
    text = (f"{day} pre-open: the {broker} login is not usable ({problem}). "
            f"Log in again (autotrader login) before the open.")
    return _notification(f"stale_token:{day}:{broker}", STALE_TOKEN, text, replay, day=day.isoformat(),
                         broker=broker, problem=problem)


def day_summary(day: date, *, replay: bool, entries: int, exits: int, net_pnl: float, open_positions: int,
                kill_reason: str | None) -> Notification:
    kill = f"; kill switch ON ({kill_reason})" if kill_reason is not None else ""
    text = (f"{day} summary: {entries} entries, {exits} exits, net P&L {rupees(net_pnl, signed=True)}, "
            f"{open_positions} position(s) held overnight{kill}")
    return _notification(f"summary:{day}", SUMMARY, text, replay, day=day.isoformat(), entries=entries,
                         exits=exits, net_pnl=round(net_pnl, 2), open_positions=open_positions,
                         kill_switch=kill_reason is not None)
