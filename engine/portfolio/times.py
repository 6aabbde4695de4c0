"""Database times: written as UTC (like the order journal), read back as IST (the column type,
`engine.storage.columns.UTCDateTime`, hands back aware UTC on every backend)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import SQLModel

from engine.models import IST


def to_db(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def from_db(moment: datetime) -> datetime:
    return moment.astimezone(IST)


def row_as_json(row: SQLModel) -> dict[str, Any]:
    """A table row as JSON-ready values: dates and times as ISO strings, times in IST."""
    out: dict[str, Any] = {}
    for key, value in row.model_dump().items():
        if isinstance(value, datetime):
            out[key] = from_db(value).isoformat()
        elif isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out
