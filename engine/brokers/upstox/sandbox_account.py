"""The Upstox sandbox's account endpoints, in the shapes of the SDK's models:

    GET  /v2/user/get-funds-and-margin[?segment=SEC|COM]   `GetUserFundMarginResponse` (token required)
    POST /v2/login/authorization/token                      `TokenResponse`, form-encoded, no token, no envelope

Cash is the account's opening balance less today's buys plus today's sales (`SimAccount`). The
token exchange takes the form Upstox documents (code, client_id, client_secret, redirect_uri,
grant_type=authorization_code), accepts a one-time code issued by `sandbox.account.issue_code()`
and answers the sandbox's access token, as Upstox answers: the bare object, not `{"status", "data"}`.
Error codes other than UDAPI100036 (invalid input) are illustrative."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from engine.brokers.upstox.sandbox_errors import ApiError

if TYPE_CHECKING:
    from engine.brokers.upstox.sandbox import UpstoxSandbox

FUNDS_PATH = "/v2/user/get-funds-and-margin"
LOGIN_PATH = "/v2/login/authorization/token"
CLIENT_ID = "sandbox-client-id"  # the sandbox app's API key (UPSTOX_API_KEY)
_SEGMENTS = {"SEC": "equity", "COM": "commodity"}


def _fund_margin(available: float, used: float) -> dict[str, Any]:
    return {"used_margin": used, "payin_amount": 0.0, "span_margin": 0.0, "adhoc_margin": 0.0,
            "notional_cash": 0.0, "available_margin": available, "exposure_margin": 0.0}


def funds_route(method: str, path: str) -> Callable[[UpstoxSandbox, dict[str, str], Any], Any] | None:
    """The handler of a funds request, or None for any other request."""
    if (method, path) != ("GET", FUNDS_PATH):
        return None

    def serve(sandbox: UpstoxSandbox, query: dict[str, str], body: Any) -> Any:
        cash, bought, _sold = sandbox.account.available(sandbox.exchange.fills)
        segments = {"equity": _fund_margin(cash, bought), "commodity": _fund_margin(0.0, 0.0)}
        segment = query.get("segment")
        if segment is None:
            return segments
        if segment not in _SEGMENTS:
            raise ApiError(400, "UDAPI100036", "Invalid segment", "segment", segment)
        return {_SEGMENTS[segment]: segments[_SEGMENTS[segment]]}

    return serve


def token_answer(sandbox: UpstoxSandbox, raw: bytes) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of `POST /v2/login/authorization/token` with the form-encoded `raw` body."""
    form = {name: values[-1] for name, values in parse_qs(raw.decode("utf-8", "replace")).items()}
    account = sandbox.account
    missing = [name for name in ("code", "client_id", "client_secret", "redirect_uri", "grant_type")
               if not form.get(name)]
    if missing:
        return 400, ApiError(400, "UDAPI100036", f"{missing[0]} is required", missing[0], None).body()
    if form["grant_type"] != "authorization_code":
        return 400, ApiError(400, "UDAPI100036", "Invalid grant_type", "grant_type", form["grant_type"]).body()
    if form["client_id"] != CLIENT_ID or form["client_secret"] != account.app_secret:
        return 401, ApiError(401, "UDAPI100069", "Check your 'client_id' and 'client_secret'").body()
    if not account.redeem(form["code"]):
        return 401, ApiError(401, "UDAPI100057", "Invalid Auth code").body()
    return 200, {"email": "sandbox@example.com", "exchanges": ["NSE"], "products": ["D", "I"],
                 "broker": "UPSTOX", "user_id": "SB0001", "user_name": "Upstox Sandbox",
                 "order_types": ["MARKET", "LIMIT", "SL", "SL-M"], "user_type": "individual", "poa": False,
                 "is_active": True, "access_token": sandbox.access_token, "extended_token": None}
