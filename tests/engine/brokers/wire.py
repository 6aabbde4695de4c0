"""Raw HTTP against a sandbox, for the wire-level tests of both venues."""

from __future__ import annotations

import json
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen


def request_json(url: str, method: str = "GET", body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body) of one request; error statuses are answers, not exceptions."""
    try:
        with urlopen(Request(url, data=body, method=method, headers=headers or {}), timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except HTTPError as error:
        return error.code, json.loads(error.read())
