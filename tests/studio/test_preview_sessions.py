"""Anonymous studio preview chats are bounded: at most `studio_chat_sessions` at once and each
forgotten after `studio_chat_ttl` seconds unused; a forgotten session's conversations leave the
preview store too, so neither memory nor the store grows with the sessions ever opened."""

from __future__ import annotations

import asyncio
from typing import Any

from mingpian.app import create_app
from mingpian.settings import Settings
from mingpian.studio.chat import chats_key
from mingpian.studio.preview_bot import preview_bot_key

TAP = {"postback": "track:SF1234567890123", "text": "查询物流"}


def _conversations(app: Any) -> set[str]:
    db = app[preview_bot_key].store.db
    return {row[0].split("\x1f")[1] for row in db.execute("SELECT id FROM conv")}


async def test_preview_sessions_are_capped_and_expire_with_their_conversations(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings.with_(studio_chat_sessions=3, studio_chat_ttl=1.0)))
    users = []
    for i in range(5):
        resp = await client.post("/api/studio/chat", json={"session": f"session-{i:04d}", **TAP})
        assert resp.status == 200
        users.append((await resp.json())["inbound"]["senderAddress"])
    await asyncio.sleep(0.05)  # the preview store's group commit
    chats = client.app[chats_key]
    assert list(chats.sessions) == ["session-0002", "session-0003", "session-0004"]
    assert _conversations(client.app) == set(users[2:])
    # a session in use stays; unused ones expire
    await asyncio.sleep(0.6)
    assert (await client.post("/api/studio/chat", json={"session": "session-0004", **TAP})).status == 200
    await asyncio.sleep(0.6)
    resp = await client.post("/api/studio/chat", json={"session": "session-0009", **TAP})
    assert resp.status == 200
    fresh = (await resp.json())["inbound"]["senderAddress"]
    await asyncio.sleep(0.05)
    assert list(chats.sessions) == ["session-0004", "session-0009"]
    assert _conversations(client.app) == {users[4], fresh}
    # a forgotten session that comes back is a new conversation, under a new number
    resp = await client.post("/api/studio/chat", json={"session": "session-0000", **TAP})
    assert (await resp.json())["inbound"]["senderAddress"] not in users
