"""Why the delivery domain refuses a request; the server maps each type to its HTTP answer in one
table (mingpian/errors.py)."""

from __future__ import annotations


class UnknownLine(LookupError):
    """Neither the caller nor the callee of a call event is a line (of the enterprise acting)."""

    def __init__(self, message: str, field: str = "caller") -> None:
        super().__init__(message)
        self.problems = [{"path": f"$.{field}", "message": message}]


class InProgress(Exception):
    """Another server process claimed this call event and has not confirmed it yet."""


class SeedError(ValueError):
    """The seed file cannot be read or does not validate; the message names file and JSON path."""


class ConfigError(ValueError):
    """Settings that cannot work together; the message says which and why."""
