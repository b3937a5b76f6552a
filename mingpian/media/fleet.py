"""Media on a fleet (`media_store=redis`): render specs and jobs in Redis, shared by every
server process and host.

- `RedisSpecs`: a spec is kept as the sidecar (specs.py) and as `mp:media:spec:<hash>` (a JSON
  string). The first spec written stays (it records the digest of the bytes first made); its TTL
  is `media_spec_max_age`, renewed when the file is served (at most once a minute per host), so
  Redis holds the specs of files in use and no more; 0 keeps them for good.
- `RedisBoard`: a job is the hash `mp:media:job:<id>` (status, the job JSON, progress, the last
  time its owner was seen, and a cancel flag), kept JOB_TTL after its last change. The owner
  publishes each change of state; every POLL seconds it writes the progress of its running jobs
  and reads their cancel flags in one pipelined round trip, so a `DELETE` answered by any process
  stops the render where it runs. A job whose owner has not been seen for STALE seconds (the
  process died) shows as failed.

All commands go through the auto-pipeline (infra/redispipe.py): the lookups of all requests in
one event-loop iteration share one round trip.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from infra import redisconn
from infra.outage import unavailable
from infra.redispipe import AutoPipeline

from ..errors import ApiError
from .cache import canonical_json
from .jobs import LIVE, Job, job_view
from .specs import LocalSpecs, digest_of

if TYPE_CHECKING:
    from .jobs import MediaJobs

log = logging.getLogger("mingpian.media")
PREFIX = "mp:media:"
JOB_TTL = 86400  # seconds a job stays visible after its last change (memory keeps the last 256)
POLL = 0.2  # seconds between the owner's progress writes and cancel-flag reads
STALE = 15.0  # seconds without a sign of the owner after which a live job shows as failed

# The spec already kept, else this one; the TTL renewed either way.
_KEEP_SPEC = """
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  cur = ARGV[1]
end
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return cur
"""
# The owner publishes a job's state; the cancel flag (set by anyone) is left alone.
_PUBLISH = """
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'view', ARGV[2], 'progress', ARGV[3], 'seen', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
# The owner's poll: progress and a sign of life in, the cancel flag out.
_TICK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'seen', ARGV[2])
return redis.call('HGET', KEYS[1], 'cancel')
"""
# A cancel request: 0 unknown job, 1 finished already, 2 flag set for the owner.
_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
if status ~= 'queued' and status ~= 'running' then return 1 end
redis.call('HSET', KEYS[1], 'cancel', '1')
return 2
"""


class RedisLink:
    """One Redis client and its auto-pipeline, shared by the spec store and the job board."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.r: aioredis.Redis | None = None
        self.pipe: AutoPipeline | None = None
        self._pool: aioredis.ConnectionPool | None = None

    async def open(self) -> None:
        pool = redisconn.pool(self.url, decode_responses=True, max_connections=8, timeout=10)
        self._pool = pool
        self.r = aioredis.Redis(connection_pool=pool)
        await self.r.ping()
        scripts = {"keep_spec": _KEEP_SPEC, "publish": _PUBLISH, "tick": _TICK, "cancel": _CANCEL}
        self.pipe = AutoPipeline(self.r, scripts)
        await self.pipe.load_scripts()

    def call(self, command: str, *args: Any) -> asyncio.Future[Any]:
        if self.pipe is None:
            raise RuntimeError("the media store's Redis link is not open")
        return self.pipe.call(command, *args)

    def script(self, name: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        if self.pipe is None:
            raise RuntimeError("the media store's Redis link is not open")
        return self.pipe.script(name, keys, args)

    async def close(self) -> None:
        if self.r is not None:
            if self.pipe is not None:
                await self.pipe.drain()
            await self.r.aclose()
            assert self._pool is not None
            await self._pool.disconnect()
            self.r = self.pipe = None


def _unavailable(exc: Exception) -> ApiError:
    if unavailable(exc) is None:  # a Redis outage is logged once (infra/outage.py), not per request
        log.warning("media store (Redis) unreachable: %s", exc)
    return ApiError(
        503,
        "http_error",
        "the shared media store is unreachable; try again",
        headers={"Retry-After": "1"},
    )


def _log_failure(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("media store (Redis): renewing a spec's TTL failed: %s", fut.exception())


class RedisSpecs:
    """Specs in the cache folder and in Redis: any host can make any file made anywhere."""

    def __init__(self, link: RedisLink, local: LocalSpecs, ttl: float) -> None:
        self.link = link
        self.local = local
        self.ttl = int(ttl)

    async def get(self, digest: str) -> dict[str, Any] | None:
        record = await self.local.get(digest)
        if record is not None:
            return record
        try:
            raw = await self.link.call("GET", PREFIX + "spec:" + digest)
        except Exception as exc:
            raise _unavailable(exc) from None
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    async def put(self, made: dict[str, Any]) -> None:
        key = PREFIX + "spec:" + digest_of(made)
        try:
            kept = await self.link.script("keep_spec", [key], [canonical_json(made).decode(), self.ttl])
        except Exception:
            await self.local.put(made)  # this host can still make it again
            raise
        self.local.write(made, json.loads(kept))

    def used(self, digest: str) -> None:
        if self.ttl > 0:
            self.link.call("EXPIRE", PREFIX + "spec:" + digest, self.ttl).add_done_callback(_log_failure)


class RedisBoard:
    """Jobs in Redis: every process answers `GET`/`DELETE /api/jobs/{id}` for every job."""

    def __init__(self, link: RedisLink, base_url: str) -> None:
        self.link = link
        self.base_url = base_url
        self._task: asyncio.Task[None] | None = None
        self._cancelled: set[str] = set()  # live jobs whose cancel flag was applied

    def _key(self, job_id: str) -> str:
        return PREFIX + "job:" + job_id

    async def publish(self, job: Job) -> None:
        view = job_view(job, self.base_url)
        args = [job.status, json.dumps(view), f"{view['progress']:.3f}", f"{time.time():.3f}", JOB_TTL]
        try:
            await self.link.script("publish", [self._key(job.id)], args)
        except Exception as exc:
            log.warning("media job %s: publishing its state to Redis failed: %s", job.id, exc)

    async def lookup(self, job_id: str) -> dict[str, Any] | None:
        try:
            fields = await self.link.call("HGETALL", self._key(job_id))
        except Exception as exc:
            raise _unavailable(exc) from None
        if isinstance(fields, list):  # RESP2 without redis-py's response callbacks: a flat list
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        if not fields or "view" not in fields:
            return None
        view: dict[str, Any] = json.loads(fields["view"])
        if view["status"] in LIVE:
            view["progress"] = max(float(view.get("progress", 0)), float(fields.get("progress", 0)))
            if time.time() - float(fields.get("seen", 0)) > STALE:
                view["status"] = "failed"
                view["error"] = ApiError(
                    500, "worker_died", "the server process running this job stopped"
                ).body()
        return view

    async def cancel(self, job_id: str) -> tuple[bool, dict[str, Any]] | None:
        try:
            outcome = await self.link.script("cancel", [self._key(job_id)], [])
        except Exception as exc:
            raise _unavailable(exc) from None
        view = await self.lookup(job_id)
        if int(outcome) == 0 or view is None:
            return None
        return int(outcome) == 2, view

    def start(self, jobs: MediaJobs) -> None:
        self._task = asyncio.ensure_future(self._poll(jobs))

    async def _poll(self, jobs: MediaJobs) -> None:
        """The owner's side: progress and liveness out, other processes' cancel requests in."""
        while True:
            await asyncio.sleep(POLL)
            live = jobs.live()
            self._cancelled &= {j.id for j in live}
            if not live:
                continue
            now = f"{time.time():.3f}"
            ticks = [
                self.link.script("tick", [self._key(j.id)], [f"{j.read_progress():.3f}", now]) for j in live
            ]
            flags = await asyncio.gather(*ticks, return_exceptions=True)
            for job, flag in zip(live, flags, strict=True):
                if isinstance(flag, BaseException):
                    log.warning("media job %s: polling Redis failed: %s", job.id, flag)
                elif flag == "1" and job.id not in self._cancelled:
                    self._cancelled.add(job.id)
                    if jobs.cancel(job):
                        log.info("media job %s: cancelled from another process", job.id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
