"""Handle one inbound event exactly once: dedupe, load, turn, commit (state CAS + outbox).

The platform gets its 200 only after the commit, so any failure before it makes the platform
retry; the retry of an already-committed delivery is recognised by its dedupe record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from infra import jsonio
from renderer import TemplateStore

from .errors import Busy
from .events import InboundEvent
from .flows import FlowStore
from .store import Commit, CommitResult, Store
from .turns import Outbound, RenderCache, State, turn

log = logging.getLogger("mingpian.chatbot")
MAX_CAS_ATTEMPTS = 16


def _dumps(obj: object) -> str:
    return jsonio.dumps_str(obj)


class Engine:
    def __init__(
        self,
        flows: FlowStore,
        templates: TemplateStore,
        store: Store,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.flows = flows
        self.templates = templates
        self.store = store
        self.on_commit = on_commit
        self.cache = RenderCache()

    async def handle(self, bot: str, event: InboundEvent) -> CommitResult:
        result, _ = await self._handle(bot, event, local=False)
        return result

    async def answer(self, bot: str, event: InboundEvent) -> tuple[CommitResult, list[Outbound]]:
        """The same turn, answered where the event came from (a web page) instead of through the
        MaaP: the dedupe record and the new state are committed as for a platform's event, but
        no outbox row is written, so nothing is sent to the user's phone. The replies come back
        with their card models (`Outbound.message`); none on a duplicate."""
        return await self._handle(bot, event, local=True)

    async def _handle(
        self, bot: str, event: InboundEvent, local: bool
    ) -> tuple[CommitResult, list[Outbound]]:
        flow = self.flows.get(bot)
        if flow is None:
            raise KeyError(bot)
        conv = f"{bot}\x1f{event.user}"
        key = f"{bot}\x1f{event.message_id}"
        for _ in range(MAX_CAS_ATTEMPTS):
            loaded = await self.store.load(conv, key)
            if loaded.seen:
                return CommitResult.DUPLICATE, []
            state = State.from_json(loaded.state) if loaded.state else None
            new, outs = turn(flow, self.templates, state, event, cache=self.cache, models=local)
            result = await self.store.commit(
                Commit(
                    key,
                    conv,
                    loaded.version,
                    _dumps(new.to_json()),
                    () if local else tuple((o.message_id, _dumps(o.body)) for o in outs),
                )
            )
            if result is CommitResult.CONFLICT:
                continue
            if result is CommitResult.OK and outs and not local:
                self.on_commit()
            return result, outs
        raise Busy(f"conversation {conv!r} changed {MAX_CAS_ATTEMPTS} times during one turn")
