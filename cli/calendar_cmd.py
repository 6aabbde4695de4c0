"""`autotrader calendar DATE`: is the NSE open that day, and when."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from cli.common import console, fail, print_json

if TYPE_CHECKING:
    from engine.calendar import NseCalendar


def calendar_payload(day: date, calendar: NseCalendar) -> dict[str, Any]:
    """The JSON document for one day (keys are a public interface: keep them)."""
    session = calendar.session(day)
    payload: dict[str, Any] = {
        "date": day.isoformat(),
        "trading_day": session is not None,
        "session_open": session.open_hhmm if session else None,
        "session_close": session.close_hhmm if session else None,
        "kind": session.kind if session else None,
        "pre_open_start": session.pre_open_start.strftime("%H:%M") if session and session.pre_open_start else None,
        "pre_open_end": session.pre_open_end.strftime("%H:%M") if session and session.pre_open_end else None,
        "breaks": [[a.strftime("%H:%M"), b.strftime("%H:%M")] for a, b in session.breaks] if session else [],
        "holiday": calendar.holiday_name(day),
        "note": session.note if session else "",
        "timezone": "Asia/Kolkata",
        # true past every source (shipped list, broker holidays, your file): weekday rule + fixed holidays
        "provisional": calendar.is_provisional(day),
    }
    return payload


def calendar_command(
    day: str = typer.Argument(..., help="Date as YYYY-MM-DD, e.g. 2024-11-20."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON (date, trading_day, session_open, ...)."),
) -> None:
    """Is DATE an NSE trading day, and what are its session times (IST)? Covers holidays, Muhurat
    and Saturday/DR-drill sessions from the shipped calendar, the holidays the last pre-open fetched
    from the broker, and your calendar_file. Past all of them the answer is provisional: weekdays
    trade except the fixed-date national holidays (26 Jan, 1 May, 15 Aug, 2 Oct, 25 Dec)."""
    from engine.calendar import CalendarError, holidays_cache_file, load_calendar
    from engine.settings import SettingsError, load_settings

    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        raise fail(f"{day!r} is not a date: use YYYY-MM-DD, e.g. 2024-11-20") from None
    try:
        settings = load_settings()
        calendar = load_calendar(settings.calendar_file, holidays_cache_file(settings.database_url))
        payload = calendar_payload(parsed, calendar)
    except (CalendarError, SettingsError) as exc:
        raise fail(str(exc)) from None
    if json_output:
        print_json(payload)
        return
    weekday = parsed.strftime("%A")
    provisional = " [yellow](provisional)[/]" if payload["provisional"] else ""
    if not payload["trading_day"]:
        reason = payload["holiday"] or ("weekend" if parsed.weekday() >= 5 else "closed")
        console.print(f"{payload['date']} ({weekday}): [bold red]closed[/] ({escape(reason)}){provisional}")
        return
    line = (
        f"{payload['date']} ({weekday}): [bold green]open[/] {payload['kind']} session "
        f"{payload['session_open']}-{payload['session_close']} IST"
    )
    if payload["pre_open_start"]:
        line += f", pre-open {payload['pre_open_start']}-{payload['pre_open_end']}"
    for start, end in payload["breaks"]:
        line += f", break {start}-{end}"
    if payload["note"]:
        line += f" ({escape(payload['note'])})"
    console.print(line + provisional)


def register(app: typer.Typer) -> None:
    app.command("calendar")(calendar_command)
