"""Trade notifications (no Prefect here): events read from the database (`collect`), their texts
(`messages`), delivery at most once per event to a webhook or any channel a caller adds (`Notifier`),
and the live session's per-minute scanner (`Outbox`). tasks/notify.py adds Prefect notification blocks."""

from engine.notify.delivery import Channel, DeliveryCounts, Notifier, default_channels, webhook_channel
from engine.notify.events import Cursor, collect
from engine.notify.messages import REPLAY_MARKER, Notification
from engine.notify.outbox import Outbox

__all__ = [
    "REPLAY_MARKER",
    "Channel",
    "Cursor",
    "DeliveryCounts",
    "Notification",
    "Notifier",
    "Outbox",
    "collect",
    "default_channels",
    "webhook_channel",
]
