"""Database engine and schema migrations.

Migrations are a documented equivalent of Alembic: `MIGRATIONS` is an ordered list of
(version, description, step). `init_db` applies every step newer than the version recorded in
`schema_version`, in one transaction each. To change the schema, append a step; never edit one
that has shipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel, create_engine, select

from engine.storage import tables
from engine.storage.tables import SchemaVersionRow


def _create_v1(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)


def _create_v2(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection, tables=[tables.NotificationRow.__table__])  # type: ignore[attr-defined]


def _create_v3(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection, tables=[tables.CorporateActionRow.__table__])  # type: ignore[attr-defined]


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema", _create_v1),
    (2, "notifications (at most one message per event)", _create_v2),
    (3, "corporate actions journal (splits and bonuses applied once)", _create_v3),
]

_ = tables  # imported for its table definitions


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def schema_version(engine: Engine) -> int:
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, SchemaVersionRow.__tablename__):
            return 0
        row = connection.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
        return int(row or 0)


def init_db(url: str) -> Engine:
    """Open (and create or migrate) the database at `url`; `sqlite://` is in memory."""
    engine = make_engine(url)
    current = schema_version(engine)
    for version, description, step in MIGRATIONS:
        if version <= current:
            continue
        with engine.begin() as connection:
            step(connection)
            SQLModel.metadata.create_all(connection, tables=[SchemaVersionRow.__table__])  # type: ignore[attr-defined]
            connection.execute(
                SchemaVersionRow.__table__.insert().values(  # type: ignore[attr-defined]
                    version=version, applied_at=func.current_timestamp(), description=description
                )
            )
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


__all__ = ["MIGRATIONS", "init_db", "make_engine", "schema_version", "select", "session_scope"]
