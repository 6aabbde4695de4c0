"""Prefect Secret blocks as token sources for a running session: `secret_block_loader(name)` is the
`loader` of `engine.brokers.login.TokenProvider`, read again on every reconnect, so a token renewed
with `autotrader login` mid-session is used without a restart (the engine never imports Prefect)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from engine.secrets import redact, register_secret

log = logging.getLogger(__name__)


def read_secret_block(block_name: str) -> str | None:
    """The Secret block's value (registered for redaction), None when there is no block of that name.
    Raises when the Prefect API cannot be read. The one place Secret blocks are read."""
    try:
        with get_client(sync_client=True) as client:
            document = client.read_block_document_by_name(block_name, block_type_slug="secret")
    except ObjectNotFound:
        return None
    value = str(Secret.model_validate(document.data).get()).strip()
    register_secret(value)
    return value or None


def secret_block_loader(block_name: str) -> Callable[[], str | None]:
    """A callable returning the Secret block's current value, or None when the block does not exist
    or the Prefect API cannot be read (the provider then falls back to the environment and .env)."""

    def load() -> str | None:
        try:
            return read_secret_block(block_name)
        except Exception as error:  # API unreachable: never fail a reconnect here
            log.warning("Secret block %r not read: %s", block_name, redact(f"{type(error).__name__}: {error}"))
            return None

    return load
