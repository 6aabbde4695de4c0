"""Where the servers we ship may listen: the replay server (`engine.feed.replay`) and the broker sandboxes
(`engine.brokers.loopback`) bind loopback only, unless they require an explicit token. Anyone who can reach a port
beyond loopback could otherwise stream the feed or place sandbox orders."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost"})


class ExposedHostError(ValueError):
    """A server was asked to listen beyond loopback without requiring a token."""


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1). Other names are not resolved: they count as
    exposed, as do "" and the wildcard addresses (every interface)."""
    name = host.strip().lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def refuse_exposed_host(host: str, *, token_required: bool, remedy: str) -> None:
    """Raise `ExposedHostError` when `host` is not loopback and no token is required; `remedy` says how to require
    one (it ends the message)."""
    if token_required or is_loopback_host(host):
        return
    raise ExposedHostError(
        f"refusing to listen on {host!r}: it is not a loopback address and no token is required, so anyone who can "
        f"reach it could connect. Listen on 127.0.0.1, or {remedy}"
    )


__all__ = ["ExposedHostError", "is_loopback_host", "refuse_exposed_host"]
