"""Logging set-up with secret redaction: every secret in the process-wide registry (engine/secrets.py)
and every token shape is replaced by `***` in every log record (message, arguments, exception and
stack text) before any handler formats it."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

from engine.secrets import REDACTED, redact, register_secrets, registered_secrets

_REDACTED_MARK = "autotrader_redacted"  # set on a record once redacted: each record is redacted once


class SecretRedactingFilter(logging.Filter):
    """Redacts the record (`engine.secrets.redact`). Attach to handlers (so records from every logger
    are covered) — `configure_logging` does. `secrets` join the process-wide registry."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        register_secrets(secrets)

    @property
    def secrets(self) -> list[str]:
        return list(registered_secrets())

    def redact(self, text: str) -> str:
        return redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _REDACTED_MARK, False):  # the record factory did it already
            return True
        # Render the message once so secrets inside args are redacted whatever their type.
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # args that do not fit the format: keep both, never raise to the caller
            message = f"{record.msg} {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
            record.exc_info = None  # the formatted (redacted) text is used instead
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        setattr(record, _REDACTED_MARK, True)
        return True


class _RedactingRecordFactory:
    """Redacts each record as it is created: handlers added later, or on loggers that do not propagate
    to the root (Prefect's), never see the root handlers' filter."""

    def __init__(self, inner: Callable[..., logging.LogRecord], redactor: SecretRedactingFilter) -> None:
        self.inner = inner
        self.redactor = redactor

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        self.redactor.filter(record)
        return record


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str | int = "INFO", secrets: Iterable[str] = ()) -> SecretRedactingFilter:
    """Configure the root logger (stderr) at `level` and redact `secrets` (see `redact_secrets`)."""
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        stderr_handler = logging.StreamHandler(sys.stderr)
        stderr_handler.setLevel(level)  # also for records of loggers set lower (engine, prefect) that propagate
        stderr_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(stderr_handler)
    return redact_secrets(secrets)


def redact_secrets(secrets: Iterable[str]) -> SecretRedactingFilter:
    """Register `secrets` (engine/secrets.py) and redact every record from now on: the filter goes on
    every root handler, and every record is redacted at creation, whichever logger and handler it goes
    to. Levels and handlers are left as they are (e.g. Prefect's). Returns the filter."""
    register_secrets(secrets)
    redactor = SecretRedactingFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretRedactingFilter) for f in handler.filters):
            handler.addFilter(redactor)
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RedactingRecordFactory):  # installed once: the registry holds every secret
        logging.setLogRecordFactory(_RedactingRecordFactory(factory, redactor))
    return redactor


__all__ = ["REDACTED", "SecretRedactingFilter", "configure_logging", "redact_secrets"]
