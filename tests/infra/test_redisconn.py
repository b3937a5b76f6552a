"""Where the Redis pools connect, against real redis-servers and Redis Sentinels: the URL forms
the setting takes; a pool through Sentinel follows a failover (the auto-pipeline's connection
and the pool's others alike); a demoted master's READONLY reply and a write that too few
replicas acknowledged are outages (503), never errors of the request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import ReadOnlyError

from infra import redisconn
from infra.outage import backend_of, outages
from infra.redispipe import AutoPipeline, NotReplicated
from infra.redisurl import parse_sentinel_url
from mingpian.settings import Settings
from simulators.sentinel import SERVICE, SentinelGroup
from simulators.servers import RedisServer

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    t = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/mp/3")
    assert t.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert (t.service, t.db, t.password, t.ssl) == ("mp", 3, "s@cret", False)
    assert parse_sentinel_url("rediss+sentinel://h/mp?sentinel_password=x").sentinel_password == "x"
    s = Settings.from_env({"MINGPIAN_REDIS_URL": "redis+sentinel://h1:26379,h2:26379/mymaster/0"})
    assert s.redis_url.startswith("redis+sentinel://")
    for bad, why in [
        ("redis+sentinel://h1:26379/", "master-name"),
        ("redis+sentinel:///mp", "names no sentinel"),
        ("redis+sentinel://h1:x/mp", "bad port"),
        ("redis+sentinel://h1/mp/zero", "is a number"),
        ("redis+sentinel://h1/mp?db=1", "sentinel_password"),
        ("http://h1:6379", "a Redis URL is one of"),
    ]:
        with pytest.raises(SystemExit, match=why):
            Settings.from_env({"MINGPIAN_REDIS_URL": bad})


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[SentinelGroup]:
    g = SentinelGroup(tmp_path / "redis", replicas=2, sentinels=3)
    await asyncio.to_thread(g.start)
    yield g
    g.stop()


async def test_a_pool_through_sentinel_follows_a_failover_and_a_demoted_master_is_an_outage(
    group: SentinelGroup,
) -> None:
    outages.clear()
    r = redisconn.client(group.url, max_connections=4, decode_responses=True)
    pipe = AutoPipeline(r, {"incr": INCR}, wait_replicas=1)
    assert await pipe.script("incr", ["n"], [1], durable=True) == 1
    assert await r.incr("m") == 1  # the pool's own connections too
    old = group.master_port()
    with group.client(group.sentinel_ports[0]) as s:  # a planned failover: the old master is demoted
        s.execute_command("SENTINEL", "FAILOVER", SERVICE)
    new = await asyncio.to_thread(group.wait_promoted, old)
    # The old master takes writes until the sentinels demote it, some seconds later (and loses
    # them then: docs/operations.md, Redis). Meanwhile a durable write there stops being
    # replicated once its replicas follow the new master: an outage, and the pipeline connects
    # afresh, to the master the sentinels name now. Once demoted, a write on a connection still
    # open to it is answered READONLY, which redis-py's Sentinel connection turns into a
    # connection error (an outage); the next connection asks the sentinels.
    with group.client(old) as demoted:
        for _ in range(300):
            try:
                await pipe.script("incr", ["n"], [1], durable=True)
                await r.set("m", "x")
            except Exception as exc:
                assert backend_of(exc) in ("redis", "redis-replicas"), exc
            conn = pipe._conn
            if conn is not None and conn.port == new and demoted.info("replication")["role"] == "slave":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the pipeline did not move to the new master")
    await r.set("m", "new")
    assert await pipe.call("SET", "k", "v", durable=True) == "OK"
    with group.client(new) as master:
        assert (master.get("m"), master.get("k")) == ("new", "v")
    await pipe.drain()
    await r.aclose()  # with the sentinels' connections (the suite fails on an unclosed socket)


async def test_a_sentinel_url_logs_in_to_the_master_it_names(tmp_path: Path) -> None:
    group = SentinelGroup(tmp_path / "redis", replicas=1, sentinels=3, password="p@ss:w/rd")
    await asyncio.to_thread(group.start)
    try:
        assert "p%40ss%3Aw%2Frd@" in group.url
        r = redisconn.client(group.url, max_connections=2, decode_responses=True)
        pipe = AutoPipeline(r, {}, wait_replicas=1)
        assert await pipe.call("SET", "名片", "退订", durable=True) == "OK"
        assert await r.get("名片") == "退订"
        await pipe.drain()
        await r.aclose()
        wrong = group.url.replace("p%40ss", "nope")
        r = redisconn.client(wrong, max_connections=1)
        with pytest.raises(redis.exceptions.AuthenticationError) as caught:
            await r.ping()
        assert backend_of(caught.value) == "redis"  # `serve` refuses to start with one line
        await r.aclose()
    finally:
        group.stop()


async def test_a_write_too_few_replicas_took_is_an_outage_and_readonly_too(tmp_path: Path) -> None:
    outages.clear()
    primary, other = RedisServer(tmp_path / "a"), RedisServer(tmp_path / "b")
    primary.start()
    other.start()
    try:
        r = redisconn.client(primary.url, max_connections=2, decode_responses=True)
        pipe = AutoPipeline(r, {}, wait_replicas=1, wait_timeout=0.05)  # a lone server: no replica
        durable, plain = pipe.call("INCR", "d", durable=True), pipe.call("INCR", "p")
        with pytest.raises(NotReplicated):
            await durable
        assert await plain == 1  # in the same batch, a write that need not wait is answered
        assert backend_of(durable.exception()) == "redis-replicas"  # an outage of its own:
        assert outages.is_down("redis-replicas") and not outages.is_down("redis")  # Redis answers
        assert await pipe.call("INCR", "p") == 2 and outages.is_down("redis-replicas")
        await pipe.drain()
        await r.aclose()
        # A replica reached by its own address (the address did not follow a failover): READONLY
        with redis.Redis(port=other.port) as c:
            c.execute_command("REPLICAOF", "127.0.0.1", str(primary.port))
        r = redisconn.client(other.url, max_connections=2, decode_responses=True)
        pipe = AutoPipeline(r, {})
        with pytest.raises(ReadOnlyError) as caught:
            await pipe.call("SET", "k", "v")
        assert backend_of(caught.value) == "redis"  # answered 503 by the server, not 500
        assert await pipe.call("GET", "p") in (None, "2")  # reads go on, over a fresh connection
        await pipe.drain()
        await r.aclose()
    finally:
        outages.clear()
        primary.stop()
        other.stop()


async def test_a_chatbot_turn_too_few_replicas_took_is_refused_and_its_resend_is_a_duplicate(
    redis_url: str,
) -> None:
    """The chatbot's commit (dedupe, state and outbox together) waits for replicas like a charge:
    without them the webhook is answered 503; the turn was done on the master all the same, so
    the platform's resend, once replicas answer, finds it done (nothing runs or replies twice)."""
    from chatbot.store import Commit, CommitResult
    from chatbot.store.redis import RedisStore

    outages.clear()
    turn = Commit("msg-1", "bot\x1fuser", 0, '{"step": 1}', (("out-1", '{"text": "您好"}'),))
    store = RedisStore(redis_url, wait=(1, 0.05))  # a lone server: no replica acknowledges
    await store.open()
    try:
        with pytest.raises(NotReplicated) as caught:
            await store.commit(turn)
        assert backend_of(caught.value) == "redis-replicas"  # answered 503, never 500
        with pytest.raises(NotReplicated):  # the resend too, while no replica answers
            await store.commit(turn)
    finally:
        await store.close()
        outages.clear()
    store = RedisStore(redis_url)  # as if a replica answered again: the resend is a duplicate
    await store.open()
    try:
        assert await store.commit(turn) is CommitResult.DUPLICATE
    finally:
        await store.close()
