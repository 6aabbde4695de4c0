"""Zerodha's published Kite Connect response bodies (`resources/`, see its README) and a loopback
server that answers the Kite routes with them, so the real `kiteconnect` client (and its date
conversions) runs on recorded payloads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.brokers.loopback import JsonHandler, LoopbackServer

RESOURCES = Path(__file__).resolve().parent / "resources"

# (method, path pattern) -> the recorded body that Kite answers it with
MOCK_ROUTES: list[tuple[str, str, str]] = [
    ("GET", r"/orders", "orders.json"),
    ("POST", r"/orders/regular", "order_response.json"),
    ("DELETE", r"/orders/regular/\w+", "order_cancel.json"),
    ("GET", r"/orders/\w+/trades", "order_trades.json"),
    ("GET", r"/orders/\w+", "order_info.json"),
    ("GET", r"/trades", "trades.json"),
    ("GET", r"/portfolio/positions", "positions.json"),
    ("GET", r"/portfolio/holdings", "holdings.json"),
    ("GET", r"/user/margins", "margins.json"),
    ("GET", r"/user/margins/equity", "margins_equity.json"),
    ("GET", r"/user/profile", "profile.json"),
    ("POST", r"/session/token", "generate_session.json"),
    ("GET", r"/gtt/triggers", "gtt_get_orders.json"),
    ("POST", r"/gtt/triggers", "gtt_place_order.json"),
    ("GET", r"/gtt/triggers/\d+", "gtt_get_order.json"),
    ("PUT", r"/gtt/triggers/\d+", "gtt_modify_order.json"),
    ("DELETE", r"/gtt/triggers/\d+", "gtt_delete_order.json"),
]


def mock_body(name: str) -> Any:
    """The whole recorded body (`{"status": "success", "data": …}`)."""
    return json.loads((RESOURCES / name).read_text())


def mock_data(name: str) -> Any:
    return mock_body(name)["data"]


class _MockHandler(JsonHandler):
    server_ref: KiteMockServer

    def _handle(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server_ref.requests.append((self.command, path))
        name = next((file for method, pattern, file in MOCK_ROUTES
                     if method == self.command and re.fullmatch(pattern, path)), None)
        if name is None:
            body = {"status": "error", "message": f"no mock for {self.command} {path}", "data": None,
                    "error_type": "GeneralException"}
            self.send_json(404, json.dumps(body).encode())
            return
        self.send_json(200, (RESOURCES / name).read_bytes())

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class KiteMockServer(LoopbackServer):
    """Answers each Kite route with its recorded body, whatever the request; `requests` lists
    (method, path) as received."""

    handler_class = _MockHandler
    name = "kite-mocks"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []
