"""`log_format = auto`: a person at a terminal reads short Chinese warning lines and no line per
request; anything else (a pipe, the journal, `docker logs`) gets the JSON lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from mingpian.logs import JsonFormatter, TerminalFormatter, setup_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def _line(record_level: int, message: str) -> tuple[bool, str]:
    root = logging.getLogger()
    record = logging.LogRecord("mingpian.access", record_level, __file__, 1, message, None, None)
    record.status = 200  # an access line's fields
    shown = root.isEnabledFor(record_level)
    return shown, root.handlers[0].format(record)


def test_on_a_terminal_only_warnings_as_short_chinese_lines(restore_logging: None) -> None:
    setup_logging("auto", "INFO", interactive=True)
    assert isinstance(logging.getLogger().handlers[0].formatter, TerminalFormatter)
    assert _line(logging.INFO, "request")[0] is False  # no line per request
    shown, text = _line(logging.WARNING, "SMPP 会话断开")
    assert shown and text.endswith(" 警告：SMPP 会话断开") and "status" not in text


@pytest.mark.parametrize("fmt", ["auto", "json"])
def test_elsewhere_json_lines_with_every_field(restore_logging: None, fmt: str) -> None:
    setup_logging(fmt, "INFO", interactive=False)
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    shown, text = _line(logging.INFO, "request")
    assert shown and json.loads(text)["status"] == 200


def test_json_asked_for_stays_json_on_a_terminal(restore_logging: None) -> None:
    setup_logging("json", "INFO", interactive=True)
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
