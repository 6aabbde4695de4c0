"""Stops and targets from price action (settings.risk):

- "swing": one tick below the lowest low of the last `swing_lookback` daily bars (forming bar
  included), the indicator `lowest_low_<N>`;
- "atr": entry − `atr_multiple` × `atr_<atr_period>` (daily).
If the chosen indicator is missing, the other method is tried. A stop closer than
`min_stop_atr` ATRs to the entry is widened to that distance (noise-sized stops would otherwise
make oversized positions). The stop is snapped DOWN to the
tick grid and kept strictly below the entry; target = entry + `reward_risk` × (entry − stop),
snapped UP (so the reward/risk is never below the setting). A strategy may set its own stop or
target (non-zero) on the Setup; they are snapped the same way and checked."""

from __future__ import annotations

from engine.indicators.snapshot import IndicatorSnapshot
from engine.models import Instrument, Setup
from engine.settings import RiskSettings

StopFound = tuple[float | None, str]  # (stop, how it was found) or (None, why not)


class StopPolicy:
    def __init__(self, risk: RiskSettings) -> None:
        self.risk = risk
        # the daily indicators this policy reads (the indicators engine must compute them)
        self.swing_indicator = f"lowest_low_{risk.swing_lookback}"
        self.atr_indicator = f"atr_{risk.atr_period}"
        methods = (self._swing_stop, self._atr_stop)
        self._methods = methods if risk.stop_method == "swing" else methods[::-1]

    def _swing_stop(self, instrument: Instrument, entry: float, snapshot: IndicatorSnapshot) -> StopFound:
        name = self.swing_indicator
        low = snapshot.daily.get(name)
        if low is None:
            return None, f"{name} n/a"
        return instrument.round_price(low - instrument.tick_size, "down"), f"1 tick below {name} {low:.2f}"

    def _atr_stop(self, instrument: Instrument, entry: float, snapshot: IndicatorSnapshot) -> StopFound:
        name = self.atr_indicator
        atr = snapshot.daily.get(name)
        if atr is None or atr <= 0:
            return None, f"{name} n/a"
        stop = entry - self.risk.atr_multiple * atr
        return instrument.round_price(stop, "down"), f"entry - {self.risk.atr_multiple:g} x {name} {atr:.2f}"

    def stop_for(self, instrument: Instrument, entry: float, snapshot: IndicatorSnapshot) -> StopFound:
        """The configured method's stop, else the other's."""
        notes = []
        for method in self._methods:
            stop, note = method(instrument, entry, snapshot)
            if stop is not None and 0 < stop < entry:
                return self._widen(instrument, entry, stop, note, snapshot)
            notes.append(note if stop is None else f"{note}: {stop:.2f} not below entry {entry:.2f}")
        return None, "no stop: " + "; ".join(notes)

    def _widen(
        self, instrument: Instrument, entry: float, stop: float, note: str, snapshot: IndicatorSnapshot
    ) -> tuple[float, str]:
        """At least `min_stop_atr` ATRs between entry and stop (when the ATR is known)."""
        atr = snapshot.daily.get(self.atr_indicator)
        if not atr or self.risk.min_stop_atr <= 0:
            return stop, note
        widest = instrument.round_price(entry - self.risk.min_stop_atr * atr, "down")
        if stop <= widest or widest <= 0:
            return stop, note
        return widest, f"{note}, widened to {self.risk.min_stop_atr:g} x ATR {atr:.2f} below entry"

    def target_for(self, instrument: Instrument, entry: float, stop: float) -> float:
        return instrument.round_price(entry + self.risk.reward_risk * (entry - stop), "up")

    def apply(self, setup: Setup, instrument: Instrument, snapshot: IndicatorSnapshot) -> str | None:
        """Set the setup's stop and target (unless the strategy did) on the tick grid. Returns
        None when the setup is usable, else the reason it is not."""
        setup.entry = instrument.round_price(setup.entry)
        if setup.stop > 0:
            setup.stop = instrument.round_price(setup.stop, "down")
            note = "strategy stop"
        else:
            stop, note = self.stop_for(instrument, setup.entry, snapshot)
            if stop is None:
                return note
            setup.stop = stop
        if not 0 < setup.stop < setup.entry:
            return f"stop {setup.stop:.2f} ({note}) is not below entry {setup.entry:.2f}"
        if setup.target > setup.entry:
            setup.target = instrument.round_price(setup.target, "up")
        else:
            setup.target = self.target_for(instrument, setup.entry, setup.stop)
        return None
