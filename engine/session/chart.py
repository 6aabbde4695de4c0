"""A small P&L chart without a plotting library: a PNG (zlib + struct, RGB) of the cumulative net P&L
after each trade (bars green above zero, red below), and the same as a text chart for markdown."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from itertools import accumulate

WIDTH, HEIGHT, MARGIN = 480, 200, 10
BACKGROUND = (255, 255, 255)
AXIS = (120, 120, 120)
PROFIT = (46, 160, 67)
LOSS = (207, 34, 46)


def _png(pixels: list[bytearray]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    header = struct.pack(">IIBBBBB", len(pixels[0]) // 3, len(pixels), 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def pnl_chart_png(net_pnls: Sequence[float], width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """PNG of the cumulative net P&L after each trade (one bar per trade, zero line in grey)."""
    pixels = [bytearray(BACKGROUND * width) for _ in range(height)]
    cumulative = list(accumulate(net_pnls)) or [0.0]
    top, bottom = max(0.0, *cumulative), min(0.0, *cumulative)
    span = (top - bottom) or 1.0
    plot_height = height - 2 * MARGIN

    def y_of(value: float) -> int:
        return MARGIN + round((top - value) / span * plot_height)

    zero = y_of(0.0)
    slot = (width - 2 * MARGIN) / len(cumulative)
    for index, value in enumerate(cumulative):
        x0 = MARGIN + round(index * slot + slot * 0.15)
        x1 = max(x0 + 1, MARGIN + round((index + 1) * slot - slot * 0.15))
        y0, y1 = sorted((zero, y_of(value)))
        colour = PROFIT if value >= 0 else LOSS
        for y in range(y0, y1 + 1):
            pixels[y][x0 * 3 : x1 * 3] = bytes(colour) * (x1 - x0)
    pixels[zero][MARGIN * 3 : (width - MARGIN) * 3] = bytes(AXIS) * (width - 2 * MARGIN)
    return _png(pixels)


def pnl_chart_markdown(labels: Sequence[str], net_pnls: Sequence[float], width: int = 30) -> str:
    """The cumulative P&L as a markdown table of text bars (█ profit, ▒ loss)."""
    if not net_pnls:
        return "_No closed trades._"
    cumulative = list(accumulate(net_pnls))
    scale = max(abs(v) for v in cumulative) or 1.0
    lines = ["| after | cumulative net P&L (₹) | |", "|---|---:|---|"]
    for label, value in zip(labels, cumulative, strict=True):
        bar = ("█" if value >= 0 else "▒") * max(1, round(abs(value) / scale * width))
        lines.append(f"| {label} | {value:,.2f} | {bar} |")
    return "\n".join(lines)
