from __future__ import annotations

import pandas as pd
import pytest

from engine.indicators import IndicatorConfig
from tests.engine.indicators.reference import synthetic_daily

# Short periods so weekly and monthly windows fill up on a few years of fixture data.
SMALL_CONFIG = IndicatorConfig(
    sma_periods=(3, 9), ema_periods=(5,), atr_periods=(4,), extreme_periods=(6,), avg_volume_periods=(5,)
)


@pytest.fixture(scope="session")
def small_config() -> IndicatorConfig:
    return SMALL_CONFIG


@pytest.fixture(scope="session")
def daily_fixture() -> pd.DataFrame:
    return synthetic_daily(700, seed=7)
