"""Execution: the order journal (write-ahead), exactly-once submission, GTT exits and
reconciliation, on top of any `engine.brokers.base.Broker`. See docs/execution.md.

The contract the trading engine relies on (implemented by `OrderManager` in `manager.py`):

    class OrderManager:
        def __init__(self, broker: Broker, db: sqlalchemy.Engine, clock: Clock, *, trading_day: date,
                     retry: RetryPolicy | None = None, rate_limiter: RateLimiter | None = None,
                     on_alert: Callable[[str], None] | None = None, submitted_grace_seconds: float = 120.0): ...
        entries_halted: bool  # True after TokenExpired: new entries raise TokenExpired
        async def submit(self, intent: OrderIntent, *, setup_id: int | None = None) -> Order
            # journals the intent (PENDING) before sending; retries only TemporaryBrokerError and
            # only after looking the tag up at the broker; never places an order twice, also
            # across restarts (a client_order_id already in the journal is looked up, not resent).
            # REJECTED orders are returned, not raised; TokenExpired is raised.
        async def refresh(self, client_order_id: str) -> Order
            # status and fills from the broker into the journal and the fills table
        async def open_orders(self) -> list[Order]
        async def cancel(self, client_order_id: str) -> Order
        async def place_exit(self, request: ExitRequest, *, position_id: int | None = None) -> ExitOrder
        async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder
        async def cancel_exit(self, exit_id: str) -> None
        async def sync_exits(self) -> list[ExitOrder]
            # refreshes the gtts table from the broker; returns exits that became terminal since
            # the last call (TRIGGERED_STOP / TRIGGERED_TARGET with exit_price and exit_quantity /
            # CANCELLED / REJECTED with the broker's message); a fired leg's order is journaled
            # (GTT<exit_id>) while it still works, so the guard can chase it
        async def reconcile(self) -> ReconcileReport
            # database vs broker orders, positions and GTTs, resolved by the documented rules

Helpers: `make_client_order_id(trading_day, key, purpose)` (20-char deterministic tag) and
`exit_request_for(instrument, quantity, stop=, target=, last_price=, tag=, limit_offset_pct=)`.
"""

from engine.execution.exits import exit_request_for
from engine.execution.ids import make_client_order_id
from engine.execution.journal import TRANSITIONS, IllegalTransition, OrderJournal
from engine.execution.manager import OrderManager, RetryPolicy
from engine.execution.ratelimit import RateLimiter
from engine.execution.reconcile import Difference, ReconcileReport

__all__ = [
    "TRANSITIONS",
    "Difference",
    "IllegalTransition",
    "OrderJournal",
    "OrderManager",
    "RateLimiter",
    "ReconcileReport",
    "RetryPolicy",
    "exit_request_for",
    "make_client_order_id",
]
