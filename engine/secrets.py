"""Secrets never leave the process. One process-wide registry of secret values (access tokens, API
keys, database passwords) and ONE redaction, `redact`, applied wherever text leaves the process: log
records (engine/logging.py), broker error messages, exceptions leaving Prefect tasks (their text
becomes state messages, events and alerts), checkpoint rows, CLI output and the demo summary.

A value joins the registry the moment it is read (`register_secret`): credentials at start, a token
refreshed mid-session when the feed client or a broker client reads it, Secret blocks when a flow
loads them. Token shapes in echoed headers or payloads (`Authorization: Bearer <x>`,
`token <key>:<token>`, `"access_token": "<x>"`, `scheme://user:<password>@host`) are masked even
when their value was never registered (defence in depth)."""

from __future__ import annotations

import functools
import inspect
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast
from urllib.parse import unquote

from pydantic import SecretStr

REDACTED = "***"
# Shorter values would redact ordinary words ("token", "secret"); real credentials are far longer.
MIN_SECRET_LENGTH = 8

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first, so no partial leftovers; replaced whole, never mutated

_VALUE = r"[A-Za-z0-9\-._~+/=]"
# (words that must occur in the lower-cased text, pattern, replacement): the words are a cheap gate, as
# most texts hold none of them. Each replacement is idempotent (re-redacting changes nothing).
_SHAPES: list[tuple[tuple[str, ...], re.Pattern[str], str]] = [
    # Upstox and OAuth: Authorization: Bearer <token>
    (("bearer",), re.compile(rf"(?i)\b(bearer\s+){_VALUE}{{8,}}"), rf"\1{REDACTED}"),
    # Kite: Authorization: token <api_key>:<access_token>
    (("token",), re.compile(rf"(?i)\b(token\s+){_VALUE}{{4,}}:{_VALUE}{{4,}}"), rf"\1{REDACTED}:{REDACTED}"),
    # "access_token": "<x>", 'api_key': '<x>', access_token=<x> (JSON, dict reprs, query strings, env lines)
    (
        ("token", "key", "secret", "passw"),
        re.compile(
            r"""(?i)((?:\b|_)(?:access[_-]?token|refresh[_-]?token|api[_-]?key|api[_-]?secret|client[_-]?secret"""
            r"""|password|passwd)\\?["']?\s*[:=]\s*\\?["']?)[^"'\\\s,;&}\])]+"""
        ),
        rf"\1{REDACTED}",
    ),
    # passwords in URLs: postgresql://user:<password>@host
    (("://",), re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@"), rf"\1{REDACTED}@"),
]


_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)([^&#]*)")


def register_secret(value: str | SecretStr | None) -> None:
    """From now on, `value` is redacted from every text `redact` sees. Empty or short values are ignored."""
    register_secrets([value])


def register_secrets(values: Iterable[str | SecretStr | None]) -> None:
    global _secrets
    plain = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in values]
    new = {v for v in plain if v and len(v) >= MIN_SECRET_LENGTH}
    if new <= set(_secrets):
        return
    with _lock:
        _secrets = tuple(sorted(new | set(_secrets), key=len, reverse=True))


def _url_parts(url: str) -> tuple[str, str, str]:
    """(scheme, "://", the rest); a text without "://" (a typo) is all rest."""
    scheme, separator, rest = url.partition("://")
    return (scheme, separator, rest) if separator else ("", "", url)


def _userinfo_password(rest: str) -> tuple[str, str] | None:
    """(user, password) of a URL's rest: everything between the user name and the LAST "@" is the
    password (a password may hold an unescaped "@" or "/"); None without a password."""
    at = rest.rfind("@")
    user, colon, password = rest[:at].partition(":") if at >= 0 else ("", "", "")
    return (user, password) if colon else None


def register_url_password(url: str | None) -> None:
    """Register the password of a URL such as `postgresql://user:password@host/db` (see `redacted_url`)."""
    _scheme, _separator, rest = _url_parts(url or "")
    userinfo = _userinfo_password(rest)
    passwords = [userinfo[1]] if userinfo else []
    passwords += [found for _name, found in _QUERY_PASSWORD.findall(rest) if found]
    register_secrets([*passwords, *(unquote(p) for p in passwords)])


def redacted_url(url: str) -> str:
    """`url` with its password replaced by ***, for logs and messages: the user-info password and a
    `password=` (`passwd=`, `pwd=`) query parameter; a URL without a password is returned unchanged."""
    scheme, separator, rest = _url_parts(url)
    userinfo = _userinfo_password(rest)
    if userinfo is not None:
        rest = f"{userinfo[0]}:***{rest[rest.rfind('@'):]}"
    return scheme + separator + _QUERY_PASSWORD.sub(r"\1***", rest)


def registered_secrets() -> tuple[str, ...]:
    return _secrets


def redact(text: str) -> str:
    """`text` with every registered secret and every token shape replaced by `***`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    lowered = text.lower()
    for words, pattern, replacement in _SHAPES:
        if any(word in lowered for word in words):
            text = pattern.sub(replacement, text)
    return text


def redact_payload(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with every string in it, keys too, redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_payload(key): redact_payload(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_payload(item) for item in value]
    return value


def _rebuilt(error: BaseException) -> BaseException:
    """An exception of `error`'s class whose text is `error`'s redacted, or a RuntimeError naming the class
    when the class cannot be rebuilt so."""
    kind, message = type(error), redact(str(error))
    args = tuple(redact(a) if isinstance(a, str) else a for a in error.args)

    def bare() -> BaseException:  # skips a custom __init__ that needs more than its args
        built = kind.__new__(kind, *args)
        built.args = args
        return built

    for build in (lambda: kind(*args), lambda: kind(message), bare):
        try:
            rebuilt = build()
            if str(rebuilt) == message:
                return rebuilt
        except Exception:  # a class that cannot be rebuilt this way: try the next
            continue
    return RuntimeError(f"{kind.__name__}: {message}")


def redacted_error(error: BaseException) -> BaseException:
    """`error` itself when none of its text (message, notes, chained causes) holds a secret; otherwise an
    exception of the same class with the redacted message, its plain attributes, its traceback, and
    without the chain (a cause built from a broker response may carry the token)."""
    text = "".join(traceback.format_exception(error))
    if redact(text) == text:
        return error
    clean = _rebuilt(error)
    for name, attribute in vars(error).items():
        if name == "__notes__":
            continue
        if isinstance(attribute, str):
            setattr(clean, name, redact(attribute))
        elif attribute is None or isinstance(attribute, bool | int | float):
            setattr(clean, name, attribute)
    for note in getattr(error, "__notes__", []):
        clean.add_note(redact(str(note)))
    return clean.with_traceback(error.__traceback__)


F = TypeVar("F", bound=Callable[..., Any])


def redact_errors(function: F) -> F:
    """Exceptions leaving `function` (sync or async) carry redacted text and no unredacted chain: put it
    under Prefect's @task / @flow so no secret becomes a state message, an event or an alert."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await function(*args, **kwargs)
            except Exception as error:
                clean = redacted_error(error)
                if clean is error:
                    raise
            raise clean  # outside the except block: no implicit __context__ to the original

        return cast(F, async_wrapper)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as error:
            clean = redacted_error(error)
            if clean is error:
                raise
        raise clean

    return cast(F, wrapper)


__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "redact",
    "redact_errors",
    "redact_payload",
    "redacted_error",
    "redacted_url",
    "register_secret",
    "register_secrets",
    "register_url_password",
    "registered_secrets",
]
