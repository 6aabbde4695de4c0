"""The trading day's stages and their checkpoints in `session_state`, so a re-run resumes instead of
starting over. Prefect-free: flows call these through thin tasks."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from engine.calendar import NseCalendar, TradingSession, holidays_cache_file, load_calendar
from engine.clock import Clock
from engine.models import StageStatus
from engine.secrets import redact_payload
from engine.settings import Settings, load_settings
from engine.storage import init_db, session_scope
from engine.storage.tables import SessionStateRow

log = logging.getLogger(__name__)

PRE_OPEN = "pre_open"
LIVE_SESSION = "live_session"
POST_CLOSE = "post_close"

# the statuses under the names the flows and the session import
RUNNING = StageStatus.RUNNING
COMPLETED = StageStatus.COMPLETED
FAILED = StageStatus.FAILED
SKIPPED = StageStatus.SKIPPED
INTERRUPTED = StageStatus.INTERRUPTED


def parse_day(day: str | date | None, clock: Clock) -> date:
    """`day` as a date; today on `clock` when None."""
    if day is None:
        return clock.today()
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"day {day!r} is not an ISO date (YYYY-MM-DD)") from None


@dataclass
class TradingDayContext:
    """What every stage of one trading day needs: the day, its session (None when the exchange is
    closed), the settings and the database."""

    day: date
    settings: Settings
    calendar: NseCalendar
    session: TradingSession | None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def skip_reason(self) -> str | None:
        """Why there is nothing to trade on this day, or None on a trading day."""
        if self.session is not None:
            return None
        holiday = self.calendar.holiday_name(self.day)
        if holiday:
            return f"{self.day.isoformat()} is an NSE holiday: {holiday}"
        return f"{self.day.isoformat()} is not an NSE trading day ({self.day.strftime('%A')})"

    @cached_property
    def db(self) -> Engine:
        return init_db(self.settings.database_url)


def open_trading_day(day: str | date | None, clock: Clock, **overrides: Any) -> TradingDayContext:
    """Settings (with `overrides`, e.g. database_url), calendar and session of `day`."""
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    calendar = load_calendar(getattr(settings, "calendar_file", None), holidays_cache_file(settings.database_url))
    resolved = parse_day(day, clock)
    session = calendar.session(resolved)
    return TradingDayContext(resolved, settings, calendar, session, {k: v for k, v in overrides.items() if v})


def record_stage(
    db: Engine, day: date, stage: str, status: StageStatus, clock: Clock, checkpoint: dict[str, Any] | None = None
) -> None:
    """Upsert the stage's status; `checkpoint` is merged into what is already stored, redacted (it may
    hold error texts, e.g. a broker's answer echoing a token)."""
    with session_scope(db) as session:
        row = session.get(SessionStateRow, (day, stage))
        now = clock.now()
        if row is None:
            row = SessionStateRow(trading_day=day, stage=stage, status=status.value, updated_at=now)
        merged = json.loads(row.checkpoint_json or "{}")
        merged.update(redact_payload(json.loads(json.dumps(checkpoint or {}, default=str))))
        row.status = status.value
        row.checkpoint_json = json.dumps(merged, default=str, sort_keys=True)
        row.updated_at = now
        session.add(row)
    log.info("stage %s of %s is %s", stage, day, status, extra={"stage": stage, "trading_day": str(day)})


def stage_state(db: Engine, day: date, stage: str) -> tuple[StageStatus, dict[str, Any]] | None:
    """(status, checkpoint) of a stage, or None when it never ran."""
    with session_scope(db) as session:
        row = session.get(SessionStateRow, (day, stage))
        if row is None:
            return None
        return StageStatus(row.status), json.loads(row.checkpoint_json or "{}")


def stage_log(db: Engine, day: date) -> dict[str, dict[str, Any]]:
    """Every stage of the day: {stage: {"status", "checkpoint", "updated_at"}}."""
    from sqlmodel import select

    with session_scope(db) as session:
        rows = session.exec(select(SessionStateRow).where(SessionStateRow.trading_day == day)).all()
        return {
            row.stage: {
                "status": row.status,
                "checkpoint": json.loads(row.checkpoint_json or "{}"),
                "updated_at": row.updated_at.isoformat() if isinstance(row.updated_at, datetime) else row.updated_at,
            }
            for row in rows
        }
