"""Upstox's published NSE master on loopback: GET /NSE.json.gz answers a gzipped JSON array of
instrument records (Upstox's layout; tick_size in paise), public as at Upstox. A small server of its
own, so the pre-open's download (`instruments.upstox_master_url`) can be tested end to end."""

from __future__ import annotations

import json
from urllib.parse import urlparse

from engine.brokers.loopback import JsonHandler, LoopbackServer

MASTER_PATH = "/NSE.json.gz"


class _Handler(JsonHandler):
    server_ref: UpstoxMasterServer

    def do_GET(self) -> None:
        master = self.server_ref
        if urlparse(self.path).path != MASTER_PATH:
            self.send_json(404, json.dumps({"status": "error", "errors": [{"message": "not found"}]}).encode())
            return
        master.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(master.body)))
        self.end_headers()
        self.wfile.write(master.body)


class UpstoxMasterServer(LoopbackServer):
    """Serves `body` (gzipped JSON) at `url + MASTER_PATH` on 127.0.0.1 (a free port). Use as a
    context manager, or `start()` / `stop()`."""

    handler_class = _Handler
    name = "upstox-master"

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.requests = 0
