"""The sweep's grid, settings overrides, walk-forward windows and choice of the best combination."""

from __future__ import annotations

from datetime import date

import pytest

from engine.research import sweep


def test_parameters_expand_into_the_full_grid_in_order() -> None:
    parameters = [sweep.parse_parameter("risk.reward_risk=1.5, 2,3"),
                  sweep.parse_parameter("risk.atr_multiple=1.5,2.5")]
    combinations = sweep.grid(parameters)
    assert len(combinations) == 6
    assert combinations[0] == {"risk.reward_risk": "1.5", "risk.atr_multiple": "1.5"}
    assert combinations[-1] == {"risk.reward_risk": "3", "risk.atr_multiple": "2.5"}


@pytest.mark.parametrize(("text", "message"), [
    ("risk.reward_risk", "expected KEY=V1,V2"),
    ("risk.reward_risk=", "expected KEY=V1,V2"),
    ("risk.reward_rsk=2", "did you mean risk.reward_risk"),
    ("nonsense=1", "unknown setting nonsense: the keys of the top level are capital"),
])
def test_bad_parameters_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(sweep.SweepError, match=message):
        sweep.parse_parameter(text)


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(sweep.SweepError, match="once"):
        sweep.grid([sweep.parse_parameter("capital=1e5"), sweep.parse_parameter("capital=2e5")])


def test_a_combination_becomes_settings_over_the_defaults() -> None:
    settings = sweep.settings_for({"risk.reward_risk": "3", "capital": "500000"})
    assert settings.risk.reward_risk == 3.0 and settings.capital == 500_000.0
    assert settings.risk.risk_per_trade_pct == 1.0  # the rest of [risk] is kept
    with pytest.raises(sweep.SweepError, match="reward_risk"):
        sweep.settings_for({"risk.reward_risk": "-1"})


def test_walk_forward_windows_roll_by_the_out_of_sample_length() -> None:
    windows = sweep.walk_forward_windows(date(2023, 1, 1), date(2023, 12, 31), 6, 3)
    assert [w.as_dict() for w in windows] == [
        {"in_sample_from": "2023-01-01", "in_sample_to": "2023-06-30",
         "out_of_sample_from": "2023-07-01", "out_of_sample_to": "2023-09-30"},
        {"in_sample_from": "2023-04-01", "in_sample_to": "2023-09-30",
         "out_of_sample_from": "2023-10-01", "out_of_sample_to": "2023-12-31"},
    ]
    with pytest.raises(sweep.SweepError, match="shorter than one in-sample window"):
        sweep.walk_forward_windows(date(2023, 1, 1), date(2023, 3, 31), 6, 3)


def test_best_ranks_missing_objectives_last_and_keeps_grid_order_on_ties() -> None:
    results = [{"params": {"a": "1"}, "summary": {"sharpe": None}},
               {"params": {"a": "2"}, "summary": {"sharpe": 0.5}},
               {"params": {"a": "3"}, "summary": {"sharpe": 0.5}}]
    assert sweep.best(results, "sharpe")["params"] == {"a": "2"}
    with pytest.raises(sweep.SweepError, match="objective"):
        sweep.best(results, "luck")
