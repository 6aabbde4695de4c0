"""The Kite sandbox's error answer, shared by its route modules."""

from __future__ import annotations


class KiteError(Exception):
    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
