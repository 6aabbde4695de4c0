"""The Upstox sandbox's error answer, shared by its route modules."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An Upstox error answer: HTTP status, errorCode, message, and the offending field."""

    def __init__(self, status: int, code: str, message: str, path: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path, self.value = status, code, message, path, value

    def body(self) -> dict[str, Any]:
        error = {
            "errorCode": self.code,
            "message": self.message,
            "propertyPath": self.path,
            "invalidValue": self.value,
            "error_code": self.code,
            "property_path": self.path,
            "invalid_value": self.value,
        }
        return {"status": "error", "errors": [error]}
