"""The notification texts: readable (₹ amounts, symbol, quantity, prices, reason), marked on a
replayed day, never holding a secret, with the structured fields beside the text."""

from __future__ import annotations

from engine.notify import REPLAY_MARKER, messages
from engine.secrets import register_secret
from tests.engine.notify.rows import DAY


def test_an_entry_says_what_was_bought_at_what_price_with_its_stop_and_target() -> None:
    note = messages.entry_filled(DAY, replay=False, client_order_id="AT1", symbol="NTPC", quantity=267,
                                 price=391.2, stop=354.35, target=470.0)
    assert note.key == "entry:AT1" and note.event == "entry"
    assert note.text == "2024-06-04 entry filled: BUY 267 NTPC @ ₹391.20 (stop ₹354.35, target ₹470.00)"
    assert note.body() == {"text": note.text, "event": "entry", "key": "entry:AT1", "day": "2024-06-04",
                           "symbol": "NTPC", "quantity": 267, "price": 391.2, "stop": 354.35, "target": 470.0,
                           "client_order_id": "AT1", "replay": False}


def test_an_exit_carries_its_reason_and_signed_pnl_and_a_replayed_day_is_marked() -> None:
    note = messages.exit_done(DAY, replay=True, trade_id=7, symbol="ONGC", quantity=436, entry_price=284.6,
                              exit_price=261.9, net_pnl=-10178.756, reason="stop (GTT)")
    assert note.key == "exit:7"
    assert note.text == (f"{REPLAY_MARKER} 2024-06-04 exit: SELL 436 ONGC @ ₹261.90 (stop (GTT)), "
                         "net P&L -₹10,178.76 (entry ₹284.60)")
    assert note.fields["net_pnl"] == -10178.76 and note.fields["replay"] is True
    gain = messages.exit_done(DAY, replay=False, trade_id=8, symbol="TCS", quantity=1, entry_price=10.0,
                              exit_price=1250.5, net_pnl=1240.5, reason="target (GTT)")
    assert "net P&L +₹1,240.50" in gain.text and not gain.text.startswith(REPLAY_MARKER)


def test_kill_switch_failed_exit_stale_token_and_summary_texts() -> None:
    kill = messages.kill_switch(DAY, replay=False, reason="day P&L -20696.10 reached the max daily loss 20000.00",
                                realized_pnl=-20696.1)
    assert kill.key == "kill:2024-06-04" and "KILL SWITCH: day P&L -20696.10" in kill.text
    failed = messages.exit_failed(DAY, replay=False, event_id=3, symbol="INFY", reason="RMS: margin", attempts=10)
    assert failed.key == "exit_failed:3"
    assert failed.text.startswith("2024-06-04 EXIT NOT PLACED for INFY after 10 attempt(s): RMS: margin.")
    token = messages.stale_token(DAY, replay=False, broker="zerodha", problem="TokenException: expired")
    assert token.key == "stale_token:2024-06-04:zerodha" and "zerodha login is not usable" in token.text
    summary = messages.day_summary(DAY, replay=True, entries=0, exits=5, net_pnl=-32205.37, open_positions=0,
                                   kill_reason="max daily loss")
    assert summary.key == "summary:2024-06-04"
    assert summary.text == (f"{REPLAY_MARKER} 2024-06-04 summary: 0 entries, 5 exits, net P&L -₹32,205.37, "
                            "0 position(s) held overnight; kill switch ON (max daily loss)")
    assert summary.fields["kill_switch"] is True


def test_a_secret_in_a_reason_never_reaches_the_text_or_the_fields() -> None:
    token = "abcd1234SECRETtoken9876"
    register_secret(token)
    note = messages.stale_token(DAY, replay=False, broker="upstox", problem=f"401 for token {token}")
    assert token not in str(note.body())
    assert "***" in note.text and "***" in note.fields["problem"]
