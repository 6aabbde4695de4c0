"""Risk: stops and targets, position sizing, the daily risk budget, capital and position limits,
and the max-daily-loss kill switch. Every decision carries a reason string."""
