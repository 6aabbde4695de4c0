"""What `autotrader login` shares between brokers, and how a running session gets a renewed token.

- `RedirectListener`: a one-shot HTTP listener on 127.0.0.1 (a free or given port) that the broker's
  login page redirects the browser to; it captures one query parameter (Kite's `request_token`,
  Upstox's `code`) and answers a short page.
- `write_env_variable`: set one variable in a `.env` file, keeping every other line.
- `TokenProvider`: a callable a live session calls on every (re)connect; it re-reads the token from
  an injected loader (a Prefect Secret block, read by the flow's side: the engine never imports
  Prefect), else the environment, else `.env`, so a token renewed by `autotrader login` during the
  day is picked up without a restart.

Access tokens are registered as secrets (`engine.secrets`) the moment they are read or received."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from dotenv import dotenv_values

from engine.brokers.loopback import LoopbackListener
from engine.secrets import register_secret

REDIRECT_HOST = "127.0.0.1"
START_PATH = "/login"
_ANSWER = (b"<!doctype html><title>autotrader login</title>"
           b"<p>autotrader received the login. You can close this tab and return to the terminal.</p>")


class LoginError(Exception):
    """The login did not produce a token; the message says why (never the token or the secret)."""


class RedirectListener:
    """Serves 127.0.0.1:`port` (0: a free port) until `stop()`; `wait()` returns the first value of
    `parameter` a request carries. A redirect that carries `expected` query values (e.g. Upstox's
    `state`) must match them; a redirect reporting an error (`status=error`, `error=…`) fails `wait()`."""

    def __init__(self, parameter: str, *, port: int = 0, expected: Mapping[str, str] | None = None,
                 login_page: str | None = None) -> None:
        self.parameter = parameter
        self.login_page = login_page  # where /login sends the browser (the broker's URL holds the API key)
        self.expected = dict(expected or {})
        self._done = threading.Event()
        self._value: str | None = None
        self._error: str | None = None
        handler = type("LoginRedirectHandler", (_RedirectHandler,), {"listener": self})
        self._listener = LoopbackListener(handler, host=REDIRECT_HOST, port=port, name="login-redirect")

    @property
    def url(self) -> str:
        """The redirect URL to register with the broker's app: `http://127.0.0.1:<port>/`."""
        return f"{self._listener.url}/"

    @property
    def start_url(self) -> str:
        """The URL to open: it forwards the browser to the broker's login page, so the page's URL (with
        the app's API key) never has to be printed."""
        return f"{self._listener.url}{START_PATH}"

    def receive(self, query: dict[str, str]) -> bool:
        """Record a redirect's query; True when it was the login's (a favicon request is not)."""
        if self._done.is_set():
            return False
        if query.get("status") == "error" or query.get("error"):
            reported = query.get("error") or query.get("message") or "status=error"
            self._error = f"the broker's login page reported an error: {reported}"
        elif not query.get(self.parameter):
            return False
        elif any(query.get(name) != value for name, value in self.expected.items()):
            names = ", ".join(self.expected)
            self._error = f"the redirect's {names} did not match this login (a stale or forged redirect)"
        else:
            self._value = query[self.parameter]
            register_secret(self._value)
        self._done.set()
        return True

    def wait(self, timeout: float) -> str:
        """The captured value; LoginError on a reported error or after `timeout` seconds."""
        if not self._done.wait(timeout):
            raise LoginError(f"no login redirect reached {self.url} within {timeout:.0f} s: open the login URL, "
                             f"log in, and check that the app's redirect URL is {self.url}")
        if self._error is not None or self._value is None:
            raise LoginError(self._error or "the login redirect carried no token")
        return self._value

    def stop(self) -> None:
        self._listener.stop()

    def __enter__(self) -> RedirectListener:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class _RedirectHandler(BaseHTTPRequestHandler):
    listener: RedirectListener

    def log_message(self, format: str, *args: Any) -> None:  # the query holds a one-time token: never logged
        return

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == START_PATH and self.listener.login_page:
            self.send_response(302)
            self.send_header("Location", self.listener.login_page)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        accepted = self.listener.receive(query)
        body = _ANSWER if accepted else b"not found"
        self.send_response(200 if accepted else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8" if accepted else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def write_env_variable(path: Path, name: str, value: str) -> None:
    """Set `name=value` in the `.env` file `path` (created if missing, mode 0600): an existing line for
    `name` is replaced, every other line kept as it was."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    assignment, kept, placed = f"{name}={value}", [], False
    for line in lines:
        if line.split("=", 1)[0].strip().removeprefix("export ").strip() != name:
            kept.append(line)
        elif not placed:  # the first assignment is replaced in place, later duplicates dropped
            kept.append(assignment)
            placed = True
    if not placed:
        kept.append(assignment)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("\n".join(kept) + "\n", encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)


class TokenProvider:
    """`provider()` -> the current access token of `variable` ("" when none), re-read on every call:
    from `loader` when given (a Secret block reader injected by the flow; None or "" from it falls
    through), else the process environment, else the `.env` file at `dotenv_path`."""

    def __init__(self, variable: str, *, loader: Callable[[], str | None] | None = None,
                 dotenv_path: Path = Path(".env"), environ: Mapping[str, str] = os.environ) -> None:
        self.variable = variable
        self.loader = loader
        self.dotenv_path = dotenv_path
        self.environ = environ

    def __call__(self) -> str:
        token = (self.loader() if self.loader is not None else None) or self.environ.get(self.variable) or ""
        if not token and self.dotenv_path.is_file():
            token = dotenv_values(self.dotenv_path).get(self.variable) or ""
        register_secret(token)
        return token
