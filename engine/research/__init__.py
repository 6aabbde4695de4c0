"""Research on the live decision path: backtest statistics, reports and parameter sweeps."""
