"""What the Kite and Upstox sandboxes share: a loopback HTTP listener on its own thread, and a
quiet JSON request handler whose answers leave in one write without Nagle's delay. The listener
refuses a host beyond loopback unless its sandbox requires an explicit token (`engine.listen`)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self

from engine.listen import refuse_exposed_host


class LoopbackListener:
    """A `ThreadingHTTPServer` serving `handler` on a daemon thread until `stop()`. A `host` beyond loopback raises
    `ExposedHostError` unless `token_required` (the sandbox checks an explicit token, not its default one)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, host: str = "127.0.0.1", port: int = 0,
                 name: str = "loopback", token_required: bool = False) -> None:
        refuse_exposed_host(host, token_required=token_required,
                            remedy="start the sandbox with an explicit access token it requires (token_required=True)")
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name=name,
                                       daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]!s}:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class LoopbackServer:
    """A small server of ours on 127.0.0.1 (a free port): `handler_class` serves it and reaches this
    object as `self.server_ref`. Use as a context manager, or `start()` / `stop()`."""

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    name: ClassVar[str] = "loopback"

    def __init__(self) -> None:
        self._listener: LoopbackListener | None = None

    def start(self) -> Self:
        handler = type(f"{type(self).__name__}Handler", (self.handler_class,), {"server_ref": self})
        self._listener = LoopbackListener(handler, name=self.name)
        return self

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    @property
    def url(self) -> str:
        if self._listener is None:
            raise RuntimeError(f"the {self.name} server is not started")
        return self._listener.url

    def __enter__(self) -> Self:
        return self.start() if self._listener is None else self

    def __exit__(self, *_: object) -> None:
        self.stop()


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body leave in one write

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delay on small answers

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the sandboxes keep their own request logs
        return

    def send_json(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
