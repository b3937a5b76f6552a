"""Logging set-up: one JSON object per line (default) or readable text."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then every extra field as key=value (an
    access line: method, path, route, status, duration_ms, request_id, remote)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={_text_value(v)}" for k, v in vars(record).items() if k not in _STANDARD)
        if not extras:
            return line
        head, sep, tail = line.partition("\n")  # a traceback stays below the line it belongs to
        return f"{head} {extras}{sep}{tail}"


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or any(c in text for c in ' "=\n') else text


LEVEL_WORDS = {"WARNING": "警告", "ERROR": "错误", "CRITICAL": "严重"}


class TerminalFormatter(logging.Formatter):
    """A short line for a person at a terminal: the time, the level in Chinese and the message
    (a traceback below it); the fields kept for machines are left out."""

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{when} {LEVEL_WORDS.get(record.levelname, record.levelname)}：{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(fmt: str, level: str, interactive: bool | None = None) -> None:
    """`auto`: JSON lines, unless stderr is a terminal (someone ran `make run`): then only
    warnings and errors, as short Chinese lines, so a line per request does not bury them."""
    if interactive is None:
        interactive = sys.stderr.isatty()
    handler = logging.StreamHandler()
    numeric: int = logging.getLevelNamesMapping()[level.upper()]
    if fmt == "auto" and interactive:
        handler.setFormatter(TerminalFormatter())
        numeric = max(logging.WARNING, numeric)
    elif fmt in ("json", "auto"):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
