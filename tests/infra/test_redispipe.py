"""The auto-pipeline both Redis stores use, against a real redis-server: many callers in one
event-loop iteration share a batch and each gets its own reply; an error reply fails only its
caller; a flushed script cache is reloaded and only the scripts that did not run run again."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from infra.redispipe import AutoPipeline, pack
from tests.support.processes import free_port

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


async def test_batches_answer_each_caller_and_survive_a_script_flush(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pipe = AutoPipeline(r, {"incr": INCR})
    got = await asyncio.gather(
        *(pipe.script("incr", ["n"], [1]) for _ in range(200)),
        pipe.call("SET", "名片", "退订"),
        pipe.call("GET", "名片"),
    )
    assert sorted(got[:200]) == list(range(1, 201)) and got[200:] == ["OK", "退订"]
    bad = pipe.call("INCR", "名片")  # not an integer: an error reply for this caller only
    ok = pipe.script("incr", ["n"], [5])
    with pytest.raises(ResponseError):
        await bad
    assert await ok == 205
    await r.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    # the INCR beside the refused script ran (once); the script ran after the reload
    assert await asyncio.gather(pipe.script("incr", ["n"], [1]), pipe.call("INCR", "n")) == [207, 206]
    assert await r.get("n") == "207"
    await pipe.drain()
    await r.aclose()


async def test_a_script_added_later_is_loaded_before_its_first_use(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pipe = AutoPipeline(r, {"incr": INCR})
    assert await pipe.script("incr", ["n"], [2]) == 2  # the first scripts are loaded by now
    pipe.add_script("double", "return 2 * tonumber(redis.call('GET', KEYS[1]))")
    assert await asyncio.gather(pipe.script("double", ["n"], []), pipe.script("incr", ["n"], [1])) == [4, 3]
    pipe.add_script("double", "return 2 * tonumber(redis.call('GET', KEYS[1]))")  # the same: fine
    with pytest.raises(ValueError):
        pipe.add_script("double", "return 0")
    await pipe.drain()
    await r.aclose()


async def test_an_unreachable_redis_fails_every_caller_rather_than_leaving_them_waiting() -> None:
    r = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    pipe = AutoPipeline(r, {"incr": INCR})
    script, plain = pipe.script("incr", ["n"], [1]), pipe.call("GET", "n")  # the scripts cannot load
    for fut in (script, plain):
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(fut, 5)
    await pipe.drain()
    await r.aclose()


def test_the_packer_writes_what_redis_py_writes() -> None:
    commands = [
        ("EVALSHA", "ab12", 2, "mp:dl:claim:名片", b"\x00raw", 1.5, -7, 10**20, 1e-05),
        ("SET", "k", ""),
    ]
    conn = aioredis.Redis().connection_pool.make_connection()
    assert pack(commands) == b"".join(conn.pack_commands(commands))
    for bad in (None, True, ["a"]):
        with pytest.raises(TypeError):
            pack([("SET", "k", bad)])
