"""Database times: written as UTC (like the order journal), read back as IST. SQLite drops the
offset, so a naive value read from the database is UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.models import IST


def to_db(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def from_db(moment: datetime) -> datetime:
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(IST)
