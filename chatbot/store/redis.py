"""The scale-out store: Redis shared by several server processes (one primary, or the one Redis
Sentinel names, infra/redisconn.py; not cluster-aware).

Keys (prefix `mp:` by default):
  dd:<dedupe key>   the platform message ID was handled (SET NX EX, TTL = the retry horizon)
  st:<conv>         "<version>\\x1f<state JSON>" (one string: the load is a single MGET)
  q:<conv>          list of pending outbound message IDs, in commit order
  m:<message id>    hash {conv, body, state, attempts, last_error, delivery, sent_ms}
  nc:<nonce key>    a webhook nonce seen within the replay window (SET NX PX)
  hm:<platform>:<hash>, hmlock:…, hmref:<ref>   media hosted on a platform (below)
  bi:<platform>:<chatbot>   the chatbot's information: in use, and the update under review
  due               sorted set conv → when its head message may be sent (ms); a claimed
                    conversation's score is pushed to the end of its lease, so only one
                    worker (in any process) sends a conversation's head at a time

Every step that must be atomic is one Lua script: the commit (dedupe + CAS + enqueue), the claim,
and the ack. A lease that expires while a send is still in flight (a MaaP slower than the lease)
lets another worker resend the same head under the same message ID: the MaaP deduplicates it,
and order is kept because the head stays the head until it is acknowledged.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from infra import jsonio, redisconn
from infra.redispipe import AutoPipeline

from ..events import StatusReport
from . import Commit, CommitResult, Loaded, OutboxItem

COMMIT = """
local p = ARGV[1]
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return 0 end
local cur = redis.call('GET', KEYS[2])
local v = 0
if cur then v = tonumber(string.sub(cur, 1, string.find(cur, '\\31', 1, true) - 1)) end
if v ~= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('SET', KEYS[2], (v + 1) .. '\\31' .. ARGV[4])
local n = 0
for i = 7, #ARGV, 2 do
  redis.call('HSET', p .. 'm:' .. ARGV[i], 'conv', ARGV[5], 'body', ARGV[i + 1], 'state', 'pending',
             'attempts', 0)
  redis.call('RPUSH', KEYS[3], ARGV[i])
  n = n + 1
end
if n > 0 then redis.call('ZADD', KEYS[4], 'NX', ARGV[6], ARGV[5]) end
return 1
"""

CLAIM = """
local p = ARGV[1]
local convs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, c in ipairs(convs) do
  local id = redis.call('LINDEX', p .. 'q:' .. c, 0)
  if id then
    redis.call('ZADD', KEYS[1], ARGV[3], c)
    local h = redis.call('HMGET', p .. 'm:' .. id, 'body', 'attempts')
    out[#out + 1] = c
    out[#out + 1] = id
    out[#out + 1] = h[1] or ''
    out[#out + 1] = h[2] or '0'
  else
    redis.call('ZREM', KEYS[1], c)
  end
end
return out
"""

# KEYS: due, q:<conv>, m:<id>; ARGV: conv, id, now_ms, final state, error, keep seconds
ACK = """
if redis.call('LINDEX', KEYS[2], 0) == ARGV[2] then redis.call('LPOP', KEYS[2]) end
redis.call('HSET', KEYS[3], 'state', ARGV[4], 'sent_ms', ARGV[3], 'last_error', ARGV[5])
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('HDEL', KEYS[3], 'body')
redis.call('EXPIRE', KEYS[3], ARGV[6])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""

# KEYS: due, m:<id>; ARGV: conv, next_ms, error
RETRY = """
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'last_error', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""


# A platform's status report, applied only to a message of that bot's conversations (and never
# creating a record for an unknown id). KEYS: m:<id>; ARGV: "<bot>\x1f", status, now, error, keep.
STATUS = """
local conv = redis.call('HGET', KEYS[1], 'conv')
if not conv or string.sub(conv, 1, string.len(ARGV[1])) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'delivery', ARGV[2], 'delivery_at', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'last_error', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class RedisStore:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        dedupe_ttl: float = 7 * 86400,
        prefix: str = "mp:",
        keep_sent: float = 7 * 86400,
        wait: tuple[int, float] = (0, 0.5),
    ) -> None:
        self.url = url
        self.wait = wait  # replicas a commit (its dedupe key with it) waits for, and how long (s)
        self.p = prefix
        self.dedupe_ttl = int(dedupe_ttl)
        self.keep_sent = int(keep_sent)
        self.r: aioredis.Redis | None = None
        # Auto-pipelining (infra/redispipe.py): the commands of every turn and send outcome
        # issued during one event-loop iteration go to Redis as ONE pipeline; a syscall per
        # command is what dominated this store's cost.
        self._pipe: AutoPipeline | None = None

    async def open(self) -> None:
        # A blocking pool: under load, callers queue for a connection instead of failing with
        # "Too many connections" (the default pool's behaviour at its limit).
        # One address or the master Sentinel names (infra/redisconn.py).
        pool = redisconn.pool(self.url, decode_responses=True, max_connections=64, timeout=10)
        self._pool = pool
        self.r = aioredis.Redis(connection_pool=pool)
        await self.r.ping()
        self._pipe = AutoPipeline(
            self.r,
            {"commit": COMMIT, "claim": CLAIM, "ack": ACK, "retry": RETRY, "status": STATUS},
            wait_replicas=self.wait[0],
            wait_timeout=self.wait[1],
        )
        await self._pipe.load_scripts()

    async def close(self) -> None:
        if self.r is not None:
            if self._pipe is not None:
                await self._pipe.drain()
            await self.r.aclose()
            await self._pool.disconnect()
            self.r = None

    @property
    def _r(self) -> aioredis.Redis:
        if self.r is None:
            raise RuntimeError("store is not open")
        return self.r

    def _call(self, command: str, *args: Any) -> asyncio.Future[Any]:
        if self._pipe is None:
            raise RuntimeError("store is not open")
        return self._pipe.call(command, *args)

    def _script(
        self, name: str, keys: list[str], args: list[Any], *, durable: bool = False
    ) -> asyncio.Future[Any]:
        if self._pipe is None:
            raise RuntimeError("store is not open")
        return self._pipe.script(name, keys, args, durable=durable)

    # -- turns --------------------------------------------------------------------------------
    async def load(self, conv: str, dedupe_key: str) -> Loaded:
        seen, cur = await self._call("MGET", self.p + "dd:" + dedupe_key, self.p + "st:" + conv)
        if seen:
            return Loaded(True, None, 0)
        if not cur:
            return Loaded(False, None, 0)
        version, _, state = cur.partition("\x1f")
        return Loaded(False, jsonio.loads(state), int(version))

    async def commit(self, c: Commit) -> CommitResult:
        args: list[Any] = [
            self.p,
            self.dedupe_ttl,
            c.expected_version,
            c.state,
            c.conv,
            int(time.time() * 1000),
        ]
        for mid, body in c.outbox:
            args += [mid, body]
        # Durable: a commit a failover lost would let the platform's redelivery run the turn again
        # and send its replies a second time under new message IDs.
        res = await self._script(
            "commit",
            [self.p + "dd:" + c.dedupe_key, self.p + "st:" + c.conv, self.p + "q:" + c.conv, self.p + "due"],
            args,
            durable=True,
        )
        return {1: CommitResult.OK, 0: CommitResult.DUPLICATE}.get(int(res), CommitResult.CONFLICT)

    # -- outbox -------------------------------------------------------------------------------
    async def claim(self, limit: int, now: float, lease: float) -> list[OutboxItem]:
        flat = await self._script(
            "claim", [self.p + "due"], [self.p, int(now * 1000), int((now + lease) * 1000), limit]
        )
        return [
            OutboxItem(flat[i + 1], flat[i + 1], flat[i], flat[i + 2], int(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

    async def _finish(self, item: OutboxItem, now: float, state: str, error: str) -> None:
        keys = [self.p + "due", self.p + "q:" + item.conv, self.p + "m:" + item.message_id]
        await self._script(
            "ack", keys, [item.conv, item.message_id, int(now * 1000), state, error[:500], self.keep_sent]
        )

    async def sent(self, item: OutboxItem, now: float) -> None:
        await self._finish(item, now, "sent", "")

    async def give_up(self, item: OutboxItem, now: float, error: str) -> None:
        await self._finish(item, now, "failed", error)

    async def retry(self, item: OutboxItem, next_at: float, error: str) -> None:
        await self._script(
            "retry",
            [self.p + "due", self.p + "m:" + item.message_id],
            [item.conv, int(next_at * 1000), error[:500]],
        )

    def tokens(self) -> RedisTokens:
        return RedisTokens(self)

    async def record_status(self, reports: list[StatusReport], now: float, bot: str) -> None:
        futures = [
            self._script(
                "status",
                [self.p + "m:" + r.message_id],
                [bot + "\x1f", r.status, now, r.error[:500], self.keep_sent],
            )
            for r in reports
        ]
        await asyncio.gather(*futures)

    async def first_nonce(self, key: str, now: float, keep: float) -> bool:
        """True the first time `key` is seen within `keep` seconds, across every process."""
        return bool(await self._call("SET", self.p + "nc:" + key, "1", "NX", "PX", max(1, int(keep * 1000))))

    async def message(self, message_id: str) -> dict[str, Any] | None:
        h = await self._r.hgetall(self.p + "m:" + message_id)
        if not h:
            return None
        return {
            "messageId": message_id,
            "conversation": h.get("conv"),
            "state": h.get("state"),
            "attempts": int(h.get("attempts", 0)),
            "lastError": h.get("last_error") or None,
            "delivery": h.get("delivery"),
            "sentAt": int(h["sent_ms"]) / 1000 if h.get("sent_ms") else None,
        }

    async def pending(self) -> int:
        total = 0
        convs = await self._r.zrange(self.p + "due", 0, -1)
        if convs:
            pipe = self._r.pipeline(transaction=False)
            for c in convs:
                pipe.llen(self.p + "q:" + c)
            total = sum(await pipe.execute())
        return total

    async def prune(self, now: float, dedupe_ttl: float, keep_sent: float) -> None:
        """Nothing to do: Redis expires dedupe records, finished messages and hosted media by TTL."""

    # -- media hosted on a platform: `hm:<platform>:<digest>` (JSON, expires with the platform's
    # copy), `hmlock:<platform>:<digest>` (the one process uploading it) and `hmref:<ref>` (what a
    # review decision names → "<platform>\x1f<digest>", expiring with the record) ---------------
    async def hosted(self, platform: str, digest: str) -> dict[str, Any] | None:
        raw = await self._r.get(f"{self.p}hm:{platform}:{digest}")
        return jsonio.loads(raw) if raw else None

    async def put_hosted(
        self, platform: str, digest: str, record: dict[str, Any], until: float, refs: tuple[str, ...] = ()
    ) -> None:
        ttl = int((until - time.time()) * 1000) if until else 0
        key = f"{self.p}hm:{platform}:{digest}"
        if until and ttl <= 0:
            return
        pipe = self._r.pipeline(transaction=True)
        pipe.set(key, jsonio.dumps_str(record), px=ttl or None)
        for ref in refs:
            pipe.set(f"{self.p}hmref:{ref}", f"{platform}\x1f{digest}", px=ttl or None)
        await pipe.execute()

    async def hosted_ref(self, ref: str) -> tuple[str, str] | None:
        raw = await self._r.get(f"{self.p}hmref:{ref}")
        if not raw:
            return None
        platform, _, digest = raw.partition("\x1f")
        return platform, digest

    async def update_hosted(
        self, platform: str, digest: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        key = f"{self.p}hm:{platform}:{digest}"
        record, _ = await self._watched(key, lambda r: change(r) if r is not None else None, keepttl=True)
        return record

    async def _watched(
        self,
        key: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        *,
        keepttl: bool = False,
    ) -> tuple[dict[str, Any] | None, bool]:
        """Optimistic: WATCH the record, write `change`'s answer only if nobody changed the record
        meanwhile, else again. (The record as it is now, whether it was written.)"""
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    record: dict[str, Any] | None = jsonio.loads(raw) if raw else None
                    new = change(record)
                    if new is None:
                        await pipe.unwatch()
                        return record, False
                    pipe.multi()
                    pipe.set(key, jsonio.dumps_str(new), keepttl=keepttl)
                    await pipe.execute()
                    return new, True
                except WatchError:
                    continue

    # -- the chatbot's information on its platform: `bi:<platform>:<chatbot>` (JSON, kept) --------
    async def bot_info(self, platform: str, chatbot: str) -> dict[str, Any] | None:
        raw = await self._r.get(f"{self.p}bi:{platform}:{chatbot}")
        return jsonio.loads(raw) if raw else None

    async def update_bot_info(
        self,
        platform: str,
        chatbot: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> tuple[dict[str, Any] | None, bool]:
        return await self._watched(f"{self.p}bi:{platform}:{chatbot}", change)

    async def host_claim(self, platform: str, digest: str, ttl: float) -> str | None:
        owner = secrets.token_hex(8)
        key = f"{self.p}hmlock:{platform}:{digest}"
        return owner if await self._r.set(key, owner, nx=True, px=int(ttl * 1000)) else None

    async def host_release(self, platform: str, digest: str, owner: str) -> None:
        await self._r.eval(UNLOCK, 1, f"{self.p}hmlock:{platform}:{digest}", owner)


UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokens:
    """The MaaP access token shared by every process on this Redis (see maap.SharedTokens)."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def _key(self, kind: str, chatbot: str) -> str:
        return f"{self.store.p}{kind}:{chatbot}"

    async def get(self, chatbot: str) -> tuple[str, float, str] | None:
        """(token, expiry, the URL its answer named or "")."""
        raw = await self.store._r.get(self._key("tok", chatbot))
        if not raw:
            return None
        expires, _, rest = raw.partition("\x1f")
        token, _, url = rest.partition("\x1f")
        return token, float(expires), url

    async def put(self, chatbot: str, token: str, expires_at: float, url: str = "") -> None:
        ttl = max(1, int((expires_at - time.time()) * 1000))
        await self.store._r.set(self._key("tok", chatbot), f"{expires_at}\x1f{token}\x1f{url}", px=ttl)

    async def lock(self, chatbot: str, ttl: float) -> str | None:
        owner = secrets.token_hex(8)
        ok = await self.store._r.set(self._key("toklock", chatbot), owner, nx=True, px=int(ttl * 1000) + 1000)
        return owner if ok else None

    async def unlock(self, chatbot: str, owner: str) -> None:
        await self.store._r.eval(UNLOCK, 1, self._key("toklock", chatbot), owner)
