"""Kite's instruments endpoint on loopback: GET /instruments/NSE answers the master as Zerodha
publishes it (a CSV body, `text/csv`), behind the same headers Kite checks (X-Kite-Version: 3,
`Authorization: token <api_key>:<access_token>`). A small server of its own beside `KiteSandbox`, so
tests and demos read a master through the real SDK call (`instruments("NSE")`)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from engine.brokers.loopback import JsonHandler, LoopbackServer


class _Handler(JsonHandler):
    server_ref: KiteInstrumentsServer

    def do_GET(self) -> None:
        master = self.server_ref
        path = urlparse(self.path).path.rstrip("/")
        if self.headers.get("X-Kite-Version") != "3":
            self._error(400, "InputException", "Missing or invalid `X-Kite-Version` header (expected 3).")
        elif self.headers.get("Authorization") != f"token {master.api_key}:{master.access_token}":
            self._error(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        elif path != "/instruments/NSE":
            self._error(404, "GeneralException", f"route not found: GET {path}")
        else:
            master.requests += 1
            body = master.csv_text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def _error(self, status: int, error_type: str, message: str) -> None:
        payload: dict[str, Any] = {"status": "error", "message": message, "data": None, "error_type": error_type}
        self.send_json(status, json.dumps(payload).encode())


class KiteInstrumentsServer(LoopbackServer):
    """GET /instruments/NSE on 127.0.0.1 (a free port); `url` is the KITE_ROOT_URL. Use as a context
    manager, or `start()` / `stop()`."""

    handler_class = _Handler
    name = "kite-instruments"

    def __init__(self, csv_text: str, *, api_key: str = "sandbox_api_key",
                 access_token: str = "sandbox_access_token") -> None:
        super().__init__()
        self.csv_text, self.api_key, self.access_token = csv_text, api_key, access_token
        self.requests = 0
