"""Files hosted before the carrier's review was tracked were in use already: after an upgrade they
count as approved until their expiry (no new upload, no wait), on both chatbot stores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from simulators.maap import Simulator

from .test_approval import CHATBOT, held

T = Any


async def test_a_file_hosted_before_reviews_is_approved_until_it_expires(
    aiohttp_client: T,
    sim: tuple[Simulator, TestServer],
    tmp_path: Path,
    store: dict[str, Any],
) -> None:
    s, _, host, file = await held(aiohttp_client, sim, tmp_path, store)  # nothing is approved now
    key = host.key(file)
    assert key.endswith("-perm")
    # the record an earlier release kept, under the key without the permanent suffix
    until = time.time() + 30 * 86400
    old = {"url": "https://maap.example/old/logo.png", "until": until, "contentType": "image/png", "size": 1}
    await host.store.put_hosted(host.platform, key.removesuffix("-perm"), old, until)
    assert await host.check({"messageList": []}) is None
    record = await host.host(CHATBOT, file)
    assert record["url"] == old["url"] and record["review"]["state"] == "approved"
    assert host.usable(record, file)["url"] == old["url"] and s.carrier.uploads == []
    # kept under its permanent key from then on
    assert (await host.store.hosted(host.platform, key))["review"]["before_reviews"] is True
    # one already near its expiry is submitted again, through the review
    await host.store.put_hosted(host.platform, key, {**record, "until": time.time() + 60}, time.time() + 60)
    again = await host.host(CHATBOT, file)
    assert len(s.carrier.uploads) == 1 and again["review"]["state"] == "waiting"
