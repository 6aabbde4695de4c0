"""Execution: the order journal (write-ahead), exactly-once submission, GTT exits and
reconciliation, on top of any `engine.brokers.base.Broker`.

The contract the trading engine relies on (implemented by `OrderManager` in `manager.py`):

    class OrderManager:
        def __init__(self, broker: Broker, db: sqlalchemy.Engine, clock: Clock, *, trading_day: date): ...
        async def submit(self, intent: OrderIntent, *, setup_id: int | None = None) -> Order
            # journals the intent (PENDING) before sending; retries only TemporaryBrokerError and
            # only after looking the tag up at the broker; never places an order twice, also
            # across restarts (a client_order_id already in the journal is looked up, not resent).
        async def refresh(self, client_order_id: str) -> Order
            # status and fills from the broker into the journal and the fills table
        async def open_orders(self) -> list[Order]
        async def place_exit(self, request: ExitRequest, *, position_id: int | None = None) -> ExitOrder
        async def modify_exit(self, exit_id: str, request: ExitRequest) -> ExitOrder
        async def cancel_exit(self, exit_id: str) -> None
        async def sync_exits(self) -> list[ExitOrder]
            # refreshes the gtts table from the broker; returns exits that became terminal since
            # the last call (TRIGGERED_STOP / TRIGGERED_TARGET / CANCELLED)
        async def reconcile(self) -> ReconcileReport
            # database vs broker orders, positions and GTTs, resolved by the documented rules
"""
