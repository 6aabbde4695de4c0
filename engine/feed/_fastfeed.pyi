"""Type stub for the C extension engine/feed/_fastfeed.c (built by setup.py; optional)."""

from collections.abc import Callable
from typing import Any

class Decoder:
    """Decodes FeedResponse frames into `frame_type(kind, current_ts_ms, ticks, market_status)`."""

    fills_slots: bool

    def __init__(
        self,
        tick_type: type,
        frame_type: Callable[..., Any],
        error_type: type[ValueError],
        kinds: tuple[Any, ...],
        statuses: tuple[Any, ...],
        fill_slots: bool = ...,
    ) -> None: ...
    def decode(self, data: bytes | bytearray | memoryview, /) -> Any: ...
