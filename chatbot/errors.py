"""Why the chatbot refuses a callback: each refusal is answered before anything is stored, and
the server maps each type to its HTTP answer in one table (mingpian/errors.py)."""

from __future__ import annotations


class AuthError(Exception):
    """The caller did not prove who it is; the message is safe to return to the caller."""


class SourceRefused(Exception):
    """The callback came from outside the networks allowed for its dialect's routes."""


class UnknownBot(LookupError):
    """The webhook names a bot that has no flow."""

    def __init__(self, bot: str) -> None:
        super().__init__(f"no chatbot named {bot!r}")
        self.problems = [{"path": "bot", "message": str(self)}]


class MalformedBody(ValueError):
    """The body is not JSON at all (as opposed to JSON that is not a valid event: BadEvent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.problems = [{"path": "$", "message": message}]


class BadEvent(Exception):
    """A body that is valid JSON but not an event we understand; problems carry JSON paths."""

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


class Busy(Exception):
    """The conversation kept changing under us; the platform should retry later."""


class InfoPending(Exception):
    """An update of the chatbot's information already waits for the carrier's decision: the
    interface's decision names the chatbot, not the update, so two at once could not be told
    apart."""


class InfoUnsupported(Exception):
    """The chatbot's platform takes no information update through its interface (or no MaaP
    account sends for it)."""


class InfoNotTaken(Exception):
    """The platform did not take the update (its answer, or why it could not be asked)."""
