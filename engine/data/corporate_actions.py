"""Corporate actions (splits and bonuses): detected, then applied once, in one journaled step.

Detection:

1. the corporate-actions file (setting `corporate_actions_file`, TOML `[[action]]` tables or CSV with a header):
   `symbol`, `ex_date`, `kind` ("split" | "bonus"), `ratio` "a:b" → `factor` (new shares per old share):
   a bonus "a:b" (a new for every b held) gives (a + b) / b, a split "a:b" (a share becomes b) gives b / a:
   RELIANCE's 1:1 bonus → 2, BAJFINANCE's 1:2 split and 4:1 bonus → 2 and 5 (two lines, or one of factor 10);
2. the instrument master: a new ISIN for the same symbol (a split changes it) is reported and makes the
   symbol's candles checked;
3. the broker's adjusted daily candles against stored history (`compare_with_candles`): stored close / broker
   close over the overlapping days is a constant usual ratio (a simple fraction) up to the ex-date and 1 from it.

Applying (`apply_action`): a `corporate_actions` row is written first (PENDING, with the plan), then each step,
and the row ends APPLIED. Each step is recorded in `rebased_json["done"]`; a step repeated after a crash finds
what it already did: stored history is checked at a recorded bar (its close before, or already / factor), the
shares against the recorded count, positions are rebased in the journal's own transaction, and a GTT is
modified to the same values again (idempotent). Steps:

- `bars`: every stored timeframe of the symbol, rows before the ex-date: prices / factor, volume x factor;
- `shares`: `shares_outstanding` x factor in the day's master and the `instruments` table, so market cap
  (shares x price) stays right;
- `positions`: open positions opened before the ex-date (`engine.portfolio.rebase`);
- `gtts`: their GTT exits modified (or re-placed) with the broker.

Indicator state needs no step of its own: the pre-open builds the metadata from the rebased history after this.
"""

from __future__ import annotations

import asyncio
import csv
import enum
import json
import logging
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine
from sqlmodel import select

from engine.clock import Clock
from engine.data.daybars import DayBarError, DayBarSource, DayBarTokenRejectedError, DayCandle, UpstoxDayBars
from engine.data.instruments import rebase_shares_outstanding, to_instrument
from engine.data.master import load_master_as_of, master_dir, write_master_table
from engine.execution.manager import OrderManager
from engine.models import IST, Instrument
from engine.portfolio.rebase import RebasedPosition, carry_exit, rebase_open_positions
from engine.storage import BarStore, session_scope
from engine.storage.tables import CorporateActionRow

if TYPE_CHECKING:
    from engine.session.stages import TradingDayContext

log = logging.getLogger(__name__)

KINDS = ("split", "bonus")
RATIO_TOLERANCE = 0.01  # a stored/broker close ratio within 1% of the factor (or of 1) counts as it
MAX_DENOMINATOR = 4  # usual factors are simple fractions: 2, 5, 10, 3/2, 5/4, 4/3 ...
CANDLE_LOOKBACK_DAYS = 30
STEPS = ("bars", "shares", "positions", "gtts")
PRICE_COLUMNS = ("open", "high", "low", "close")


class ActionStatus(enum.StrEnum):
    """A journaled action (`corporate_actions`): steps left, or every step done."""

    PENDING = "PENDING"
    APPLIED = "APPLIED"


class CorporateActionError(ValueError):
    """A corporate-actions file or an action that cannot be used."""


@dataclass(frozen=True, slots=True)
class CorporateAction:
    symbol: str
    ex_date: date
    factor: float  # new shares per old share
    kind: str  # split | bonus | adjustment (seen in the broker's candles only)
    source: str  # file | candles

    def as_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "ex_date": self.ex_date.isoformat(), "factor": self.factor,
                "kind": self.kind, "source": self.source}


def factor_of(kind: str, ratio: str) -> float:
    """New shares per old share of a `kind` action with `ratio` "a:b" (see the module docstring)."""
    try:
        first, second = (int(part) for part in ratio.split(":"))
    except ValueError:
        raise CorporateActionError(f"ratio {ratio!r} is not 'a:b' with whole numbers") from None
    if first <= 0 or second <= 0:
        raise CorporateActionError(f"ratio {ratio!r}: both numbers must be positive")
    if kind == "bonus":
        return (first + second) / second
    if kind == "split":
        return second / first
    raise CorporateActionError(f"kind {kind!r} is not one of {', '.join(KINDS)}")


def _action_from(record: Mapping[str, Any], where: str) -> CorporateAction:
    try:
        symbol, kind, ratio = str(record["symbol"]).strip(), str(record["kind"]).strip(), str(record["ratio"]).strip()
        ex = record["ex_date"]
        if isinstance(ex, datetime):
            raise ValueError(f"ex_date {ex} has a time")
        ex_date = ex if isinstance(ex, date) else date.fromisoformat(str(ex).strip())
    except (KeyError, ValueError) as exc:
        raise CorporateActionError(f"{where}: needs symbol, ex_date (YYYY-MM-DD), kind and ratio ({exc})") from None
    try:
        return CorporateAction(symbol, ex_date, factor_of(kind, ratio), kind, "file")
    except CorporateActionError as exc:
        raise CorporateActionError(f"{where}: {exc}") from None


def load_actions_file(path: Path) -> list[CorporateAction]:
    """The actions of a TOML (`[[action]]` tables) or CSV (header `symbol,ex_date,kind,ratio`) file. Two lines of
    one symbol and ex-date (BAJFINANCE's split and bonus) are one action of the product of their factors."""
    if path.suffix.lower() == ".toml":
        try:
            records = tomllib.loads(path.read_text()).get("action", [])
        except tomllib.TOMLDecodeError as exc:
            raise CorporateActionError(f"{path}: {exc}") from None
    else:
        with path.open(newline="") as handle:
            records = list(csv.DictReader(handle))
    merged: dict[tuple[str, date], CorporateAction] = {}
    for number, record in enumerate(records, start=1):
        action = _action_from(record, f"{path} action {number}")
        same = merged.get((action.symbol, action.ex_date))
        if same is not None:
            action = CorporateAction(action.symbol, action.ex_date, same.factor * action.factor,
                                     f"{same.kind}+{action.kind}", "file")
        merged[(action.symbol, action.ex_date)] = action
    return sorted(merged.values(), key=lambda a: (a.ex_date, a.symbol))


# ---------------------------------------------------------------- the broker's adjusted candles


@dataclass(frozen=True, slots=True)
class CandleFinding:
    """What the broker's candles say of one symbol: an action (None: none seen), and a problem when the ratios
    fit no action (not applied, reported)."""

    symbol: str
    overlap: int  # days both stored and in the broker's candles
    action: CorporateAction | None = None
    problem: str = ""


def usual_factor(ratio: float) -> float | None:
    """`ratio` snapped to a simple fraction (denominator <= 4), None when none lies within the tolerance."""
    snapped = Fraction(ratio).limit_denominator(MAX_DENOMINATOR)
    return float(snapped) if snapped > 0 and abs(float(snapped) / ratio - 1) <= RATIO_TOLERANCE else None


def _near(value: float, target: float) -> bool:
    return abs(value / target - 1) <= RATIO_TOLERANCE


def compare_with_candles(symbol: str, stored: pd.DataFrame, candles: Sequence[DayCandle], day: date) -> CandleFinding:
    """Stored daily closes against the broker's adjusted candles before `day`: a run of days at a constant usual
    ratio, then days at 1, is an action whose ex-date is the first day at 1 (`day` when none is: stored history
    ends before the ex-date, or was never moved to the new basis)."""
    closes = {ts.date(): float(close) for ts, close in zip(stored["ts"], stored["close"], strict=True)}
    ratios = [(c.day, closes[c.day] / c.close) for c in candles if c.day in closes and c.day < day and c.close > 0]
    ratios.sort()
    finding = CandleFinding(symbol, len(ratios))
    moved = [i for i, (_, ratio) in enumerate(ratios) if not _near(ratio, 1.0)]
    if not moved:
        return finding
    before, after = ratios[: moved[-1] + 1], ratios[moved[-1] + 1 :]
    median = float(pd.Series([r for _, r in before]).median())
    factor = usual_factor(median)
    if factor is None or factor == 1.0:
        return CandleFinding(symbol, len(ratios), problem=f"stored/broker close ratio {median:.4f} is no usual "
                             "split/bonus factor: not applied")
    odd = [d.isoformat() for d, r in before if not _near(r, factor)]
    if odd:
        return CandleFinding(symbol, len(ratios), problem=f"stored/broker close ratio is {factor:g} on some days "
                             f"but not on {', '.join(odd[:5])}: not applied")
    ex_date = after[0][0] if after else day
    return CandleFinding(symbol, len(ratios), CorporateAction(symbol, ex_date, factor, "adjustment", "candles"))


def check_candles(source: DayBarSource, instruments: Sequence[Instrument], store: BarStore, day: date,
                  applied_since: Mapping[str, date] | None = None) -> tuple[list[CandleFinding], list[str]]:
    """`compare_with_candles` for each instrument over the last `CANDLE_LOOKBACK_DAYS` days, from its latest
    applied ex-date on (`applied_since`): we rebased the days before it, and a broker that adjusts its candles a
    day late would show them off by 1 / factor, an action backwards. Errors are returned; a refused token stops
    the asking."""
    findings, errors = [], []
    since = applied_since or {}
    for instrument in instruments:
        start = max(day - timedelta(days=CANDLE_LOOKBACK_DAYS), since.get(instrument.symbol, date.min))
        stored = store.read(instrument.symbol, "1d", start=start, end=day)
        if not len(stored):
            continue
        try:
            candles = source.fetch(instrument, start, day - timedelta(days=1))
        except DayBarError as exc:
            errors.append(str(exc))
            if isinstance(exc, DayBarTokenRejectedError):
                break
            continue
        findings.append(compare_with_candles(instrument.symbol, stored, candles, day))
    return findings, errors


def stored_step_problem(store: BarStore, action: CorporateAction) -> str:
    """Why stored history must not be rebased at the action's ex-date, or "": when bars on and after it are
    stored, the overnight step into it must be nearer the factor than 1 (else the history is on one basis
    already, adjusted or not, and only the broker's candles can tell which)."""
    frame = store.read(action.symbol, "1d")
    before, after = frame[frame["ts"] < _ex_ts(action)], frame[frame["ts"] >= _ex_ts(action)]
    if not len(before) or not len(after):
        return ""
    step = float(before["close"].iloc[-1]) / float(after["open"].iloc[0])
    if abs(math.log(step / action.factor)) < abs(math.log(step)):
        return ""
    return (f"stored daily history of {action.symbol} shows no step of {action.factor:g} at {action.ex_date} "
            f"(close/open {step:.3f}): it is on one price basis already; not rebased (compare with the broker's "
            "candles)")


# ---------------------------------------------------------------- applying, journaled


@dataclass
class ActionContext:
    """What applying an action touches. `orders` None: GTTs are left for a run with a broker (the step stays
    pending when there is one to move)."""

    db: Engine
    store: BarStore
    data_dir: Path
    work_dir: Path
    day: date
    clock: Clock
    instruments: Mapping[str, Instrument]  # by symbol
    orders: OrderManager | None = None
    gtt_limit_offset_pct: float = 0.5  # settings.execution.gtt_limit_offset_pct


def _journal(row: CorporateActionRow) -> dict[str, Any]:
    return dict(json.loads(row.rebased_json or "{}"))


def _save(context: ActionContext, row_id: int, plan: dict[str, Any], **changes: Any) -> None:
    with session_scope(context.db) as session:
        row = session.get(CorporateActionRow, row_id)
        assert row is not None
        row.rebased_json = json.dumps(plan)
        for name, value in changes.items():
            setattr(row, name, value)
        session.add(row)


def journal_row(db: Engine, action: CorporateAction, day: date) -> CorporateActionRow:
    """The action's journal row (created PENDING when new), keyed by symbol and ex-date."""
    with session_scope(db) as session:
        row = session.exec(select(CorporateActionRow).where(CorporateActionRow.symbol == action.symbol,
                                                            CorporateActionRow.ex_date == action.ex_date)).first()
        if row is None:
            row = CorporateActionRow(symbol=action.symbol, ex_date=action.ex_date, factor=action.factor,
                                     kind=action.kind, source=action.source, detected_on=day)
            session.add(row)
            session.flush()
            session.refresh(row)
        return row


def journaled(db: Engine) -> list[CorporateActionRow]:
    with session_scope(db) as session:
        return list(session.exec(select(CorporateActionRow).order_by(CorporateActionRow.ex_date,  # type: ignore[arg-type]
                                                                     CorporateActionRow.symbol)).all())


def _ex_ts(action: CorporateAction) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(action.ex_date, time(), IST))


def _plan_bars(context: ActionContext, action: CorporateAction) -> dict[str, Any]:
    """Per stored timeframe with bars before the ex-date: how many, and the last one's time and close (what
    `_rebase_bars` checks to know whether the file was rewritten already)."""
    planned = {}
    for folder in sorted(context.store.root.glob("timeframe=*")):
        timeframe = folder.name.removeprefix("timeframe=")
        if not context.store.has(action.symbol, timeframe):
            continue
        frame = context.store.read(action.symbol, timeframe)
        before = frame[frame["ts"] < _ex_ts(action)]
        if len(before):
            planned[timeframe] = {"rows": len(before), "check_ts": before["ts"].iloc[-1].isoformat(),
                                  "close_was": float(before["close"].iloc[-1])}
    return planned


def _rebase_bars(context: ActionContext, action: CorporateAction, planned: Mapping[str, Any]) -> None:
    """Rows before the ex-date of each planned timeframe: prices / factor, volume x factor; a file whose
    checked close is already / factor is not divided again."""
    for timeframe, plan in planned.items():
        frame = context.store.read(action.symbol, timeframe)
        check = frame.loc[frame["ts"] == pd.Timestamp(plan["check_ts"]), "close"]
        if not len(check):
            raise CorporateActionError(f"{action.symbol} {timeframe}: the bar of {plan['check_ts']} is gone")
        close = float(check.iloc[0])
        if math.isclose(close, plan["close_was"] / action.factor, rel_tol=1e-12):
            continue  # rewritten before a crash
        if not math.isclose(close, plan["close_was"], rel_tol=1e-12):
            raise CorporateActionError(f"{action.symbol} {timeframe}: close of {plan['check_ts']} is {close}, "
                                       f"neither {plan['close_was']} nor / {action.factor:g}")
        earlier = frame["ts"] < _ex_ts(action)
        for column in PRICE_COLUMNS:
            frame.loc[earlier, column] = frame.loc[earlier, column] / action.factor
        frame.loc[earlier, "volume"] = (frame.loc[earlier, "volume"] * action.factor).round().astype("int64")
        context.store.write(action.symbol, timeframe, frame, merge=False)


def _master_rows(context: ActionContext, symbol: str) -> tuple[pd.DataFrame, pd.Index]:
    table = load_master_as_of(context.data_dir, context.work_dir, context.day)
    return table, table.index[table["symbol"] == symbol]


def _plan_shares(context: ActionContext, action: CorporateAction) -> float | None:
    """The symbol's shares outstanding before the action (None: not known)."""
    table, rows = _master_rows(context, action.symbol)
    was = table.at[rows[0], "shares_outstanding"] if len(rows) else None
    return None if was is None or pd.isna(was) else float(was)


def _rebase_shares(context: ActionContext, action: CorporateAction, was: float) -> float:
    """shares_outstanding x factor in the day's master and the instruments table, each only where it still
    holds `was`. Returns the new count."""
    now = was * action.factor
    table, rows = _master_rows(context, action.symbol)
    if math.isclose(float(table.at[rows[0], "shares_outstanding"]), was, rel_tol=1e-12):
        table.loc[rows, "shares_outstanding"] = now
        write_master_table(context.work_dir, context.day, table)
    rebase_shares_outstanding(context.db, action.symbol, was, now)
    return now


def _last_close(context: ActionContext, symbol: str) -> float | None:
    frame = context.store.read(symbol, "1d", start=context.day - timedelta(days=CANDLE_LOOKBACK_DAYS), end=context.day)
    return float(frame["close"].iloc[-1]) if len(frame) else None


async def _carry_gtts(context: ActionContext, action: CorporateAction, instrument: Instrument,
                      plan: dict[str, Any]) -> bool:
    """Each rebased position's GTT moved; False when one is left (no broker here)."""
    pending = [p for p in map(RebasedPosition.from_dict, plan.get("positions", [])) if p.exit_id is not None]
    if not pending:
        return True
    last_price = _last_close(context, action.symbol)
    if context.orders is None or last_price is None:
        return False
    carried = []
    for position in pending:
        carried.append(await carry_exit(
            context.orders, instrument, position, last_price, limit_offset_pct=context.gtt_limit_offset_pct,
            replacement_tag=f"ca-{action.ex_date:%Y%m%d}-{position.position_id}-{position.exit_id}"))
    plan["gtts"] = carried
    return True


async def apply_action(context: ActionContext, action: CorporateAction) -> dict[str, Any]:
    """Apply `action` (see the module docstring), resuming from its journal: an APPLIED action is not applied
    again. Returns its journal entry."""
    row = journal_row(context.db, action, context.day)
    assert row.id is not None
    plan = _journal(row)
    if row.status == ActionStatus.APPLIED:
        return {**action.as_dict(), "status": ActionStatus.APPLIED, "rebased": plan, "applied_now": False}
    action = CorporateAction(row.symbol, row.ex_date, row.factor, row.kind, row.source)  # as first journaled
    instrument = context.instruments.get(action.symbol) or Instrument(f"NSE_EQ|{action.symbol}", action.symbol, "")
    done: list[str] = plan.setdefault("done", [])
    if "bars" not in plan:  # the plan is journaled first: a crash afterwards finds what was rewritten
        plan["bars"] = _plan_bars(context, action)
        plan["shares"] = {"was": _plan_shares(context, action)}
        _save(context, row.id, plan)
    if "bars" not in done:
        _rebase_bars(context, action, plan["bars"])
        done.append("bars")
        _save(context, row.id, plan)
    if "shares" not in done:
        if plan["shares"]["was"] is not None:
            plan["shares"]["now"] = _rebase_shares(context, action, plan["shares"]["was"])
        done.append("shares")
        _save(context, row.id, plan)
    if "positions" not in done:
        with session_scope(context.db) as session:  # the positions and their journal entry in one transaction
            rebased = rebase_open_positions(session, instrument, action.ex_date, action.factor)
            plan["positions"] = [p.as_dict() for p in rebased]
            done.append("positions")
            journal = session.get(CorporateActionRow, row.id)
            assert journal is not None
            journal.rebased_json = json.dumps(plan)
            session.add(journal)
    if "gtts" not in done and await _carry_gtts(context, action, instrument, plan):
        done.append("gtts")
    complete = all(step in done for step in STEPS)
    status = ActionStatus.APPLIED if complete else ActionStatus.PENDING
    _save(context, row.id, plan, status=status.value, applied_at=context.clock.now() if complete else None)
    log.warning("corporate action %s %s x%g (%s, %s): %s", action.symbol, action.ex_date, action.factor,
                action.kind, action.source, status)
    return {**action.as_dict(), "status": status, "rebased": plan, "applied_now": True}


@dataclass
class CorporateActionsReport:
    day: date
    applied: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)  # journaled, steps left (e.g. no broker)
    findings: list[dict[str, Any]] = field(default_factory=list)  # every detection, applied or not
    warnings: list[str] = field(default_factory=list)

    def result(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "applied": self.applied, "pending": self.pending,
                "findings": self.findings, "warnings": self.warnings}


async def run_corporate_actions(context: ActionContext, *, file_actions: Sequence[CorporateAction],
                                candles: DayBarSource | None, check_symbols: Sequence[str],
                                isin_changes: Sequence[Mapping[str, Any]] = ()) -> CorporateActionsReport:
    """One pass: resume journaled actions left PENDING, apply the file's actions due by the day, then check
    `check_symbols` and the symbols whose ISIN changed against the broker's candles and apply what they show."""
    report = CorporateActionsReport(context.day)

    async def apply(action: CorporateAction) -> None:
        entry = await apply_action(context, action)
        if entry["applied_now"]:
            (report.applied if entry["status"] == ActionStatus.APPLIED else report.pending).append(entry)

    for row in journaled(context.db):
        if row.status != ActionStatus.APPLIED:
            await apply(CorporateAction(row.symbol, row.ex_date, row.factor, row.kind, row.source))
    done = {(row.symbol, row.ex_date) for row in journaled(context.db)}
    for action in file_actions:
        if action.ex_date > context.day or (action.symbol, action.ex_date) in done \
                or not context.store.has(action.symbol, "1d"):
            continue
        report.findings.append(action.as_dict())
        problem = stored_step_problem(context.store, action)
        if problem:
            report.warnings.append(problem)
            continue
        await apply(action)
    for change in isin_changes:
        report.warnings.append(f"ISIN of {change['symbol']} changed ({change['old_isin']} -> {change['new_isin']}): "
                               "a split or face-value change? its candles are checked")
    symbols = list(dict.fromkeys([*check_symbols, *(str(c["symbol"]) for c in isin_changes)]))
    if candles is None and isin_changes:
        report.warnings.append("no broker candles to check on this day: add the action to the corporate-actions "
                               "file if there was one")
    elif candles is not None:
        known = [context.instruments[s] for s in symbols if s in context.instruments]
        applied_since: dict[str, date] = {}
        for row in journaled(context.db):  # oldest first: the latest ex-date of a symbol wins
            applied_since[row.symbol] = row.ex_date
        findings, errors = await asyncio.to_thread(check_candles, candles, known, context.store, context.day,
                                                   applied_since)
        report.warnings += [f"candles not read: {error}" for error in errors]
        for finding in findings:
            if finding.problem:
                report.warnings.append(f"{finding.symbol}: {finding.problem}")
            elif finding.action is not None:
                report.findings.append(finding.action.as_dict())
                await apply(finding.action)
    for warning in report.warnings:
        log.warning("corporate actions: %s", warning)
    return report


def isin_changes_of(work_dir: Path, day: date) -> list[dict[str, Any]]:
    """The ISIN changes the day's instrument-master refresh found (its saved result), [] before one."""
    path = master_dir(work_dir) / f"{day.isoformat()}.json"
    return list(json.loads(path.read_text()).get("isin_changes", [])) if path.exists() else []


async def corporate_actions_for_day(context: TradingDayContext) -> dict[str, Any]:
    """The pre-open step (after the instrument-master refresh, before the metadata build, which then reads the
    rebased history): the actions of `corporate_actions_file`, the master's ISIN changes, and on a live day
    (feed.source "upstox") the broker's adjusted candles of the universe and the held symbols; GTTs of open
    positions are moved through the configured broker. A replayed day has no candles to compare: its history is
    the replay's own. Returns `CorporateActionsReport.result()`."""
    from engine.brokers.factory import make_broker
    from engine.brokers.login import TokenProvider
    from engine.clock import LiveClock
    from engine.session import day as day_work
    from engine.settings import load_credentials

    settings = context.settings
    path = settings.corporate_actions_file
    file_actions = load_actions_file(Path(path)) if path is not None else []
    instruments = {str(row["symbol"]): to_instrument(row) for _, row in day_work.instrument_table(context).iterrows()}
    held = day_work.held_positions(context)
    credentials = load_credentials()
    candles = (UpstoxDayBars(credentials.upstox_api_url, TokenProvider("UPSTOX_ACCESS_TOKEN"))
               if settings.feed.source == "upstox" else None)
    clock = LiveClock()
    broker = make_broker(settings, credentials, clock=clock, db=context.db) if held else None
    orders = OrderManager(broker, context.db, clock, trading_day=context.day) if broker is not None else None
    action_context = ActionContext(context.db, day_work.bar_store(context), Path(settings.data_dir),
                                   day_work.work_dir(context), context.day, clock, instruments, orders,
                                   settings.execution.gtt_limit_offset_pct)
    if broker is not None:
        await broker.connect()
    try:
        report = await run_corporate_actions(
            action_context, file_actions=file_actions, candles=candles,
            check_symbols=day_work.with_held_symbols(day_work.universe_symbols(context), held.values()),
            isin_changes=isin_changes_of(action_context.work_dir, context.day))
    finally:
        if broker is not None:
            await broker.close()
    return report.result()


__all__ = [
    "ActionContext",
    "CandleFinding",
    "CorporateAction",
    "CorporateActionError",
    "CorporateActionsReport",
    "apply_action",
    "check_candles",
    "compare_with_candles",
    "corporate_actions_for_day",
    "factor_of",
    "isin_changes_of",
    "journaled",
    "load_actions_file",
    "run_corporate_actions",
    "stored_step_problem",
    "usual_factor",
]
