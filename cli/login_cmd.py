"""`autotrader login zerodha|upstox`: renew the day's access token through the broker's login page.

A loopback listener on 127.0.0.1 (a free port, or `--port`: it must be the app's registered redirect
URL) receives the browser after the login; the request token (Kite) or authorization code (Upstox)
is exchanged through the SDK, and the access token is stored in the Prefect Secret block the flows
read (`kite-access-token`, `upstox-access-token`) or, with `--env-file`, in that file. The token is
never printed. What is printed to open is the listener's own /login URL, which forwards the browser
to the broker's login page, so the app's API key is not printed either."""

from __future__ import annotations

import enum
import secrets
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import console, fail

if TYPE_CHECKING:
    from engine.settings import Credentials


class LoginBroker(enum.StrEnum):
    zerodha = "zerodha"
    upstox = "upstox"


@dataclass(frozen=True, slots=True)
class _Venue:
    variable: str  # the access token's variable (in .env)
    block: str  # the Prefect Secret block the flows read
    parameter: str  # the redirect's query parameter holding the one-time code
    needs: tuple[str, str]  # the variables of the app's key and secret
    checks_state: bool  # the broker echoes our `state` (Upstox): a redirect without it is refused
    login_page: Callable[[str, str, str], str]  # (api key, redirect URL, state) -> the broker's login URL
    exchange: Callable[[str, str, str, str], str]  # (code, api key, api secret, redirect URL) -> access token


def _venue(broker: LoginBroker, credentials: Credentials) -> _Venue:
    if broker is LoginBroker.zerodha:
        from engine.brokers.zerodha import login as kite

        return _Venue(kite.TOKEN_VARIABLE, kite.SECRET_BLOCK, kite.REDIRECT_PARAMETER,
                      ("KITE_API_KEY", "KITE_API_SECRET"), checks_state=False,
                      login_page=lambda key, _redirect, _state: kite.login_url(key),
                      exchange=lambda code, key, secret, _redirect: kite.exchange_request_token(
                          code, api_key=key, api_secret=secret, root_url=credentials.kite_root_url))
    from engine.brokers.upstox import login as upstox

    return _Venue(upstox.TOKEN_VARIABLE, upstox.SECRET_BLOCK, upstox.REDIRECT_PARAMETER,
                  ("UPSTOX_API_KEY", "UPSTOX_API_SECRET"), checks_state=True,
                  login_page=lambda key, redirect, state: upstox.login_url(
                      key, redirect, state, api_url=credentials.upstox_api_url),
                  exchange=lambda code, key, secret, redirect: upstox.exchange_code(
                      code, client_id=key, client_secret=secret, redirect_uri=redirect,
                      api_url=credentials.upstox_api_url))


def _store_in_secret_block(block: str, token: str) -> None:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    Secret(value=SecretStr(token)).save(block, overwrite=True)


def login_command(
    broker: Annotated[LoginBroker, typer.Argument(help="zerodha (Kite Connect) or upstox.")],
    env_file: Annotated[Path | None, typer.Option(
        "--env-file", help="Store the token in this .env file (e.g. .env) instead of the Prefect Secret block.",
        dir_okay=False)] = None,
    port: Annotated[int, typer.Option(
        help="Port of the 127.0.0.1 redirect listener: the app's registered redirect URL is "
             "http://127.0.0.1:PORT/ (0: a free port, for a sandbox).", min=0, max=65535)] = 0,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the login page in a browser.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the login.", min=1)] = 300.0,
) -> None:
    """Log in to the broker and store the day's access token (Kite tokens expire around 06:00 IST,
    Upstox tokens around 03:30 IST) where the flows read it: the Prefect Secret block `kite-access-token`
    / `upstox-access-token`, or `--env-file`. Needs KITE_API_KEY and KITE_API_SECRET, or UPSTOX_API_KEY
    and UPSTOX_API_SECRET (environment or .env). The token is never printed."""
    from engine.brokers.base import ConfigError
    from engine.brokers.login import LoginError, RedirectListener, write_env_variable
    from engine.secrets import register_secret
    from engine.settings import load_credentials

    credentials = load_credentials()
    venue = _venue(broker, credentials)
    key_field, secret_field = (name.lower() for name in venue.needs)
    key, secret = getattr(credentials, key_field), getattr(credentials, secret_field)
    missing = [name for name, value in zip(venue.needs, (key, secret), strict=True) if value is None]
    if missing:
        raise fail(f"login {broker}: {' and '.join(missing)} must be set (environment or .env): they are the "
                   f"app's API key and secret from the broker's developer console")
    api_key, api_secret = key.get_secret_value(), secret.get_secret_value()
    state = secrets.token_urlsafe(16)
    try:
        expected = {"state": state} if venue.checks_state else None
        listener = RedirectListener(venue.parameter, port=port, expected=expected)
    except OSError as error:
        raise fail(f"login {broker}: cannot listen on 127.0.0.1:{port}: {error.strerror or error}") from None
    with listener:
        listener.login_page = venue.login_page(api_key, listener.url, state)
        console.print(f"Open {listener.start_url} in a browser and log in to {broker}.", soft_wrap=True)
        console.print(f"Waiting up to {timeout:.0f} s for the redirect to {listener.url} "
                      "(the app's redirect URL must be exactly this).", soft_wrap=True)
        if open_browser:
            webbrowser.open(listener.start_url)
        try:
            token = venue.exchange(listener.wait(timeout), api_key, api_secret, listener.url)
        except (LoginError, ConfigError) as error:
            raise fail(f"login {broker} failed: {error}") from None
    register_secret(token)
    if env_file is not None:
        try:
            write_env_variable(env_file, venue.variable, token)
        except OSError as error:
            raise fail(f"login {broker}: cannot write {env_file}: {error.strerror or error}") from None
        console.print(f"Logged in to {broker}: {venue.variable} stored in {env_file}.", soft_wrap=True)
        return
    try:
        _store_in_secret_block(venue.block, token)
    except Exception as error:  # the Prefect API unreachable, refused, ...: say so, offer .env
        raise fail(f"login {broker}: could not store the token in the Prefect Secret block {venue.block!r} "
                   f"({type(error).__name__}: {error}); check PREFECT_API_URL, or use --env-file .env") from None
    console.print(f"Logged in to {broker}: the access token is stored in the Prefect Secret block {venue.block!r}.",
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("login")(login_command)
