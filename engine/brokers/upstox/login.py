"""Upstox login (OAuth 2 authorization code): the authorization dialog URL, and the exchange of the
redirect's `code` for an access token through the SDK (`LoginApi.token` with client_id,
client_secret, redirect_uri and grant_type=authorization_code: `POST /v2/login/authorization/token`).
The redirect URL must be the one registered with the app; `state` guards against a forged redirect."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import upstox_client
import urllib3
from upstox_client.rest import ApiException

from engine.brokers.base import check_http_url
from engine.brokers.login import LoginError
from engine.brokers.upstox.client import API_VERSION
from engine.brokers.upstox.parse import error_from_response
from engine.secrets import redact, register_secret, register_secrets

DIALOG_PATH = "/v2/login/authorization/dialog"
REDIRECT_PARAMETER = "code"
TOKEN_VARIABLE = "UPSTOX_ACCESS_TOKEN"
SECRET_BLOCK = "upstox-access-token"


def login_url(client_id: str, redirect_uri: str, state: str, *, api_url: str = "https://api.upstox.com") -> str:
    """The page to open: Upstox's authorization dialog (it then redirects with `code` and `state`)."""
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{api_url.rstrip('/')}{DIALOG_PATH}?{query}"


def exchange_code(code: str, *, client_id: str, client_secret: str, redirect_uri: str,
                  api_url: str = "https://api.upstox.com", timeout: float = 7.0) -> str:
    """The access token for `code`; LoginError (redacted) when Upstox refuses or is unreachable."""
    register_secrets([client_secret, code])
    host = check_http_url("UPSTOX_API_URL", api_url, "https://api.upstox.com", sandbox="upstox-sandbox")
    configuration = type.__call__(upstox_client.Configuration)  # never the SDK's shared default (client.py)
    configuration.host = host
    api_client = upstox_client.ApiClient(configuration)
    failure: LoginError
    try:
        response = upstox_client.LoginApi(api_client).token(
            API_VERSION, code=code, client_id=client_id, client_secret=client_secret, redirect_uri=redirect_uri,
            grant_type="authorization_code", _preload_content=False, _request_timeout=timeout)
        payload = json.loads(response.data)
    except ApiException as error:
        refused = error_from_response(int(error.status or 0), error.body, str(error.reason or ""))
        failure = LoginError(redact(f"Upstox refused the authorization code: {refused}"))
    except urllib3.exceptions.HTTPError as error:
        failure = LoginError(redact(f"Upstox unreachable at {host}: {type(error).__name__}"))
    except ValueError:
        failure = LoginError("Upstox answered the token request with a body that is not JSON")
    else:
        token = str(payload.get("access_token") or "") if isinstance(payload, dict) else ""
        register_secret(token)
        if not token:
            raise LoginError("Upstox's token answer carried no access_token")
        return token
    finally:
        api_client.rest_client.pool_manager.clear()
    raise failure  # outside the except blocks: the SDK's exception (with the raw body) is not chained
