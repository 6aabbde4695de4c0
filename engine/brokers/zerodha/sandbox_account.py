"""The Kite sandbox's account endpoints, in the shapes of `kiteconnect-mocks` (margins_equity.json,
margins.json, generate_session.json):

    GET  /user/margins, GET /user/margins/{equity|commodity}   funds (token required)
    POST /session/token                                         request_token -> access_token (no token)

Cash is the account's opening balance less today's buys plus today's sales (`SimAccount`); the
session exchange checks `checksum = sha256(api_key + request_token + api_secret)` and a one-time
request token issued by `sandbox.account.issue_code()`, and answers the sandbox's access token."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from engine.brokers.zerodha.sandbox_errors import KiteError

if TYPE_CHECKING:
    from engine.brokers.zerodha.sandbox import KiteSandbox

SESSION_TOKEN_PATH = "/session/token"
_UTILISED_ZERO = ("exposure", "m2m_realised", "m2m_unrealised", "option_premium", "payout", "span", "turnover",
                  "liquid_collateral", "stock_collateral", "delivery")


def _segment(opening: float, net: float, debits: float, sales: float, *, enabled: bool) -> dict[str, Any]:
    return {
        "enabled": enabled, "net": net,
        "available": {"adhoc_margin": 0, "cash": opening, "opening_balance": opening, "live_balance": net,
                      "collateral": 0, "intraday_payin": 0},
        "utilised": {"debits": debits, "holding_sales": sales, **dict.fromkeys(_UTILISED_ZERO, 0)},
    }


def margins(sandbox: KiteSandbox, segment: str | None) -> dict[str, Any]:
    """The answer of `GET /user/margins[/segment]` (call under the sandbox's lock)."""
    account = sandbox.account
    net, debits, sales = account.available(sandbox.exchange.fills)
    segments = {"equity": _segment(account.opening_balance, net, debits, sales, enabled=True),
                "commodity": _segment(0.0, 0.0, 0.0, 0.0, enabled=False)}
    if segment is None:
        return segments
    if segment not in segments:
        raise KiteError(400, "InputException", f"Invalid segment `{segment}`.")
    return segments[segment]


def session_token(sandbox: KiteSandbox, form: dict[str, str]) -> dict[str, Any]:
    """The answer of `POST /session/token`; TokenException (403) for a wrong key, checksum or token."""
    account = sandbox.account
    api_key, request_token = form.get("api_key", ""), form.get("request_token", "")
    expected = hashlib.sha256((api_key + request_token + account.app_secret).encode()).hexdigest()
    if api_key != sandbox.api_key or form.get("checksum") != expected:
        raise KiteError(403, "TokenException", "Invalid `checksum`.")
    if not account.redeem(request_token):
        raise KiteError(403, "TokenException", "Token is invalid or has expired.")
    return {
        "user_type": "individual", "email": "sandbox@example.com", "user_name": "Kite Sandbox",
        "user_shortname": "Sandbox", "broker": "ZERODHA", "exchanges": ["NSE"], "products": ["CNC", "MIS"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "avatar_url": None, "user_id": "SB0001",
        "api_key": sandbox.api_key, "access_token": sandbox.access_token, "public_token": "sandbox-public",
        "enctoken": "", "refresh_token": "", "silo": "",
        "login_time": sandbox.clock.now().strftime("%Y-%m-%d %H:%M:%S"), "meta": {"demat_consent": "physical"},
    }
