"""Kite Connect login: the login URL, and the exchange of the redirect's `request_token` for an
access token through the SDK (`KiteConnect.generate_session(request_token, api_secret)`, which
posts `checksum = sha256(api_key + request_token + api_secret)` to `POST /session/token`).
Kite redirects to the redirect URL registered in the app (developer console); the login command
listens there (`engine.brokers.login.RedirectListener`)."""

from __future__ import annotations

from urllib.parse import urlencode

import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kite_errors

from engine.brokers.base import check_http_url
from engine.brokers.login import LoginError
from engine.secrets import redact, register_secret, register_secrets

LOGIN_PAGE = "https://kite.zerodha.com/connect/login"
REDIRECT_PARAMETER = "request_token"
TOKEN_VARIABLE = "KITE_ACCESS_TOKEN"
SECRET_BLOCK = "kite-access-token"


def login_url(api_key: str) -> str:
    """The page to open: Kite's login for the app `api_key` (it then redirects with `request_token`)."""
    return f"{LOGIN_PAGE}?{urlencode({'v': '3', 'api_key': api_key})}"


def exchange_request_token(request_token: str, *, api_key: str, api_secret: str,
                           root_url: str = "https://api.kite.trade", timeout: float = 7.0) -> str:
    """The access token for `request_token`; LoginError (redacted) when Kite refuses or is unreachable."""
    register_secrets([api_secret, request_token])
    root = check_http_url("KITE_ROOT_URL", root_url, "https://api.kite.trade", sandbox="zerodha-sandbox")
    kite = KiteConnect(api_key=api_key, root=root, timeout=timeout)
    failure: LoginError
    try:
        session = kite.generate_session(request_token, api_secret=api_secret)
    except kite_errors.KiteException as error:
        failure = LoginError(redact(f"Kite refused the request token ({type(error).__name__}): {error}"))
    except requests.RequestException as error:
        failure = LoginError(redact(f"Kite unreachable at {root}: {type(error).__name__}"))
    else:
        token = str(session.get("access_token") or "")
        register_secret(token)
        if not token:
            raise LoginError("Kite's session answer carried no access_token")
        return token
    finally:
        kite.reqsession.close()
    raise failure  # outside the except blocks: the SDK's error (with its raw body) is not chained
