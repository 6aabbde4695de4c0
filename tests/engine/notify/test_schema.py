"""Migrations from version 1 add the `notifications` table (2) and the later ones to a database made before
them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from engine.storage import init_db
from engine.storage.db import MIGRATIONS, schema_version


def test_a_version_1_database_gets_the_notifications_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = init_db(url)
    with engine.begin() as connection:  # back to what version 1 shipped
        connection.execute(text("DROP TABLE notifications"))
        connection.execute(text("DROP TABLE corporate_actions"))  # version 3
        connection.execute(text("DELETE FROM schema_version WHERE version >= 2"))
    engine.dispose()
    assert schema_version(engine) == 1
    migrated = init_db(url)
    assert schema_version(migrated) == MIGRATIONS[-1][0] == 3
    assert {c["name"] for c in inspect(migrated).get_columns("notifications")} == {"key", "sent_at", "channel",
                                                                                    "status"}
    migrated.dispose()
