"""The sweep heatmap: the objective over the first two swept parameters (best over any others)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def objective_grid(results: Sequence[dict[str, Any]], objective: str) -> tuple[str, list[str], str, list[str],
                                                                              list[list[float | None]]]:
    """(row key, row values, column key, column values, cells): the best objective of each cell."""
    keys = list(results[0]["params"]) if results else []
    row_key = keys[0] if keys else ""
    column_key = keys[1] if len(keys) > 1 else ""
    rows = list(dict.fromkeys(r["params"][row_key] for r in results)) if row_key else [""]
    columns = list(dict.fromkeys(r["params"][column_key] for r in results)) if column_key else [""]
    cells: list[list[float | None]] = [[None] * len(columns) for _ in rows]
    for result in results:
        i = rows.index(result["params"][row_key]) if row_key else 0
        j = columns.index(result["params"][column_key]) if column_key else 0
        value = result["summary"].get(objective)
        if value is not None and (cells[i][j] is None or value > cells[i][j]):  # type: ignore[operator]
            cells[i][j] = float(value)
    return row_key, rows, column_key, columns, cells


def heatmap_png(results: Sequence[dict[str, Any]], objective: str, title: str) -> bytes:
    """A labelled PNG heatmap, drawn off-screen like the P&L chart (no pyplot, no display)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from engine.session.chart import figure_png

    row_key, rows, column_key, columns, cells = objective_grid(results, objective)
    values = np.array([[np.nan if c is None else c for c in row] for row in cells], dtype=float)
    figure = Figure(figsize=(1.6 + 1.1 * len(columns), 1.4 + 0.6 * len(rows)), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(values, cmap="RdYlGn", aspect="auto")
    axes.set_xticks(range(len(columns)), labels=columns)
    axes.set_yticks(range(len(rows)), labels=rows)
    axes.set_xlabel(column_key or "(one parameter)")
    axes.set_ylabel(row_key)
    for i in range(len(rows)):
        for j in range(len(columns)):
            axes.text(j, i, "n/a" if np.isnan(values[i, j]) else f"{values[i, j]:.2f}", ha="center", va="center",
                      fontsize=9)
    figure.colorbar(image, ax=axes, label=objective)
    axes.set_title(title)
    return figure_png(figure)
