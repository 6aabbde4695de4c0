"""Per-day Prefect artifacts from the daily report: setups, orders, positions and trades as tables,
the P&L as markdown with a chart, and the chart as a PNG file linked from it. And the live view of a
session (`LiveViewPublisher`): progress, positions and setups tables and the P&L, updated in place."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
    create_image_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from engine.secrets import redact, redact_errors, redact_payload
from engine.session.chart import chart_trades, pnl_chart_markdown, pnl_chart_png
from engine.session.day import work_dir
from engine.session.stages import TradingDayContext
from engine.session.view import POSITION_COLUMNS, SETUP_COLUMNS, SessionView

TABLE_COLUMNS = {
    "setups": ["symbol", "instrument_key", "status", "entry", "stop", "target", "score", "quantity", "reason"],
    "orders": [
        "client_order_id", "symbol", "side", "quantity", "status", "average_price", "purpose", "broker_order_id",
    ],
    "positions": ["symbol", "quantity", "average_price", "stop", "target", "status", "exit_id"],
    "trades": ["symbol", "quantity", "entry_price", "exit_price", "gross_pnl", "charges", "net_pnl", "exit_reason"],
}


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """`rows` restricted to `columns`; an empty table keeps one blank row so the UI still shows its columns."""
    return [{column: row.get(column) for column in columns} for row in rows] or [dict.fromkeys(columns, "")]


def _rows(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return _table(report.get(name) or [], TABLE_COLUMNS[name])


def pnl_markdown(day: str, report: dict[str, Any], chart_path: Path | None) -> str:
    trades = report.get("trades") or []
    net = [float(t.get("net_pnl") or 0.0) for t in trades]
    risk = report.get("risk") or {}
    lines = [
        f"# autotrader P&L — {day}",
        "",
        f"- setups: **{len(report.get('setups') or [])}**, orders: **{len(report.get('orders') or [])}**, "
        f"closed trades: **{len(trades)}**, open positions: **{len(report.get('positions') or [])}**",
        f"- realised net P&L: **₹{sum(net):,.2f}** (gross ₹{sum(float(t.get('gross_pnl') or 0) for t in trades):,.2f})",
        f"- risk used: ₹{float(risk.get('risk_used') or 0):,.2f} of ₹{float(risk.get('daily_risk_cap') or 0):,.2f} "
        f"(capital ₹{float(risk.get('capital') or 0):,.2f})",
        "",
        "## Cumulative net P&L",
        "",
        pnl_chart_markdown([str(t.get("symbol")) for t in trades], net),
    ]
    if chart_path is not None:
        lines += ["", f"Chart (PNG): `{chart_path}`"]
    return "\n".join(lines)


@task(name="publish-artifacts", cache_policy=NO_CACHE, timeout_seconds=120, retries=1)
@redact_errors
def publish_day_artifacts(context: TradingDayContext, report: dict[str, Any]) -> dict[str, str]:
    """Tables (setups, orders, positions, trades) and the P&L markdown for `context.day`; returns keys."""
    day = context.day.isoformat()
    keys: dict[str, str] = {}
    for name in TABLE_COLUMNS:
        key = f"{name}-{day}"
        create_table_artifact(table=_rows(report, name), key=key, description=f"autotrader {name} of {day}")
        keys[name] = key
    chart_path = work_dir(context) / "reports" / day / "pnl.png"
    chart_path.parent.mkdir(parents=True, exist_ok=True)
    session = context.session
    chart_path.write_bytes(pnl_chart_png(
        chart_trades(report.get("trades") or []), day=context.day,
        capital=float((report.get("risk") or {}).get("capital") or context.settings.capital),
        start=session.open if session else None, end=session.close if session else None,
    ))
    keys["pnl"] = f"pnl-{day}"
    create_markdown_artifact(markdown=pnl_markdown(day, report, chart_path.resolve()), key=keys["pnl"],
                             description=f"autotrader P&L of {day}")
    # Inline (data URL) so the UI shows the chart without serving files.
    png_url = "data:image/png;base64," + base64.b64encode(chart_path.read_bytes()).decode()
    create_image_artifact(image_url=png_url, key=f"pnl-chart-{day}", description=f"equity and net P&L of {day}")
    keys["pnl_chart"] = f"pnl-chart-{day}"
    return keys


LIVE_VIEW_ARTIFACTS = ("progress", "positions", "setups", "pnl")


def live_view_keys(day: date) -> dict[str, str]:
    """The artifact key of each part of the live view of `day` (e.g. `live-positions-2024-06-04`)."""
    return {name: f"live-{name}-{day.isoformat()}" for name in LIVE_VIEW_ARTIFACTS}


def live_pnl_markdown(day: date, view: SessionView) -> str:
    kill = f"**ON**: {view.kill_reason}" if view.kill_switch else "off"
    executed = sum(1 for setup in view.setups if setup["status"] == "EXECUTED")
    return "\n".join([
        f"# autotrader live session — {day.isoformat()}, {view.at:%H:%M:%S} IST",
        "",
        f"- trading session: **{view.progress_pct:.1f} %** elapsed; market {view.market_status or 'not reported yet'}; "
        f"{view.ticks:,} ticks",
        f"- realised net P&L: **₹{view.realised_pnl:,.2f}** ({view.closed_trades} closed trades)",
        f"- unrealised P&L: ₹{view.unrealised_pnl:,.2f} ({view.open_positions} open positions)",
        f"- setups found: **{len(view.setups)}** ({executed} executed)",
        f"- kill switch: {kill}",
    ])


class LiveViewPublisher:
    """The live view of one day's session as artifacts that update in place: the progress artifact is
    created once and then updated; the positions and setups tables and the P&L markdown keep fixed keys,
    so each publish is a new version of the same key and the UI shows the latest. Call from the flow run."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.keys = live_view_keys(day)
        self._progress_id: UUID | None = None

    async def publish(self, view: SessionView) -> None:
        at = f"{view.at:%H:%M} IST"
        progress_note = f"trading session {view.progress_pct:.1f} % elapsed at {at}"
        if self._progress_id is None:
            self._progress_id = await acreate_progress_artifact(view.progress_pct, key=self.keys["progress"],
                                                                description=progress_note)
        else:
            await aupdate_progress_artifact(self._progress_id, view.progress_pct, description=progress_note)
        await acreate_table_artifact(redact_payload(_table(view.positions, POSITION_COLUMNS)),
                                     key=self.keys["positions"], description=f"positions and P&L at {at}")
        await acreate_table_artifact(redact_payload(_table(view.setups, SETUP_COLUMNS)), key=self.keys["setups"],
                                     description=f"setups found by {at}")
        await acreate_markdown_artifact(redact(live_pnl_markdown(self.day, view)), key=self.keys["pnl"],
                                        description=f"realised P&L and kill switch at {at}")
