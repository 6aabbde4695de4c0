"""Persistence: `init_db(url)` for the database (SQLite by default, PostgreSQL by URL) and
`BarStore` for Parquet bar history."""

from engine.storage.bars import BarStore
from engine.storage.db import init_db, make_engine, schema_version, session_scope

__all__ = ["BarStore", "init_db", "make_engine", "schema_version", "session_scope"]
