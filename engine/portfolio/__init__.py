"""Positions, the active-positions filter, the exit monitor, the trade log and Indian charges."""
