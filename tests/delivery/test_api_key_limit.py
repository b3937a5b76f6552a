"""Wrong API keys on the HTTP API are limited like console sign-in's (the same counts, per key
and per client address, shared by the workers on Redis), on both stores: past the limit a wrong
key gets 429 with Retry-After, while a right key is always let through, behind a shared proxy
too."""

from __future__ import annotations

from typing import Any

from mingpian.api.delivery.session import ADDRESS_FAILURES, KEY_FAILURES

from .support import CMB_KEY, OPERATOR, SF_KEY, AppFactory, Client, auth

LINES = "/api/enterprises/sf/lines"


async def _get(client: Client, key: str, **headers: str) -> Any:
    return await client.get(LINES, headers={**auth(key), **headers})


async def test_wrong_keys_are_limited_but_never_the_right_one(make_app: AppFactory) -> None:
    client = await make_app(trusted_proxies="127.0.0.1/32")
    one = {"X-Forwarded-For": "203.0.113.1"}
    # a spray of keys from one address: past its limit every wrong key is refused
    answers = [(await _get(client, f"mpk_guess-{i}", **one)).status for i in range(ADDRESS_FAILURES)]
    assert answers == [401] * ADDRESS_FAILURES
    for key, header in (("mpk_guess-last", "Authorization"), ("mpk_other", "X-API-Key")):
        headers = {header: key if header == "X-API-Key" else f"Bearer {key}", **one}
        r = await client.get(LINES, headers=headers)
        body = await r.json()
        assert r.status == 429 and body["error"] == "too_many_requests", body
        assert 0 < int(r.headers["Retry-After"]) <= 61
    # the right keys from that address are let through all the same, either header
    assert (await _get(client, SF_KEY, **one)).status == 200
    assert (await client.get(LINES, headers={"X-API-Key": OPERATOR, **one})).status == 200
    # the console's sign-in counts the same wrong keys: its right key still signs in
    assert (await client.post("/api/session", json={"key": "mpk_x"}, headers=one)).status == 429
    assert (await client.post("/api/session", json={"key": SF_KEY}, headers=one)).status == 201
    # one key tried again and again, from addresses of its own
    tries = [
        (await _get(client, "mpk_revoked", **{"X-Forwarded-For": f"198.51.100.{i}"})).status
        for i in range(KEY_FAILURES + 1)
    ]
    assert tries == [401] * KEY_FAILURES + [429]
    # another client is not held back
    assert (await _get(client, "mpk_typo", **{"X-Forwarded-For": "192.0.2.7"})).status == 401


async def test_behind_a_shared_proxy_a_right_key_is_never_refused(make_app: AppFactory) -> None:
    """Not configured as trusted, the proxy is every client's address: one client's wrong keys
    hold back the wrong keys of all, never a right one."""
    client = await make_app()
    for i in range(ADDRESS_FAILURES + 3):
        await _get(client, f"mpk_noise-{i}")
    assert (await _get(client, "mpk_one-more")).status == 429
    for key in (SF_KEY, OPERATOR):
        for _ in range(3):
            assert (await _get(client, key)).status == 200
    assert (await client.get("/api/enterprises/cmb/lines", headers=auth(CMB_KEY))).status == 200


async def test_the_counts_hold_across_the_workers_that_share_redis(
    make_app: AppFactory, backend: dict[str, Any]
) -> None:
    first = await make_app()
    for _ in range(KEY_FAILURES):
        assert (await _get(first, "mpk_wrong")).status == 401
    await first.close()
    second = await make_app()  # another worker on the same store (here: after the first)
    assert (await _get(second, "mpk_wrong")).status == (
        429 if backend.get("delivery_counters") == "redis" else 401
    )
    assert (await _get(second, SF_KEY)).status == 200
