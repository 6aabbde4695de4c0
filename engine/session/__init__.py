"""The trading day around the engine, without Prefect: stage checkpoints (`stages`), the pre-open
and post-close work (`day`) and the live session glue feed -> TradingEngine (`live`). Flows call
these through thin tasks."""
