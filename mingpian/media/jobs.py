"""Media jobs: a process pool, a concurrency limit, progress and cancellation.

Rendering (Pillow drawing, ffmpeg encoding) runs in worker processes so the event loop keeps
answering `/healthz` and API calls. A semaphore bounds how many renders run at once (memory: a
720p video job holds ~30 MB of frames and an ffmpeg). Identical requests in flight share one
job. Video workers report progress through a small file in the job's folder and stop when a
`cancel` file appears there (a file works across processes without a manager process).

A job runs in the server process that created it (its owner). Where else it can be seen is a
`JobBoard`: `LocalBoard` (nowhere else: `GET /api/jobs/{id}` answers in the owner process only)
here, `RedisBoard` (every process and host; fleet.py). The owner publishes each change of state
to the board; a `DELETE` that reaches another process sets a cancel flag there, which the
owner's board applies (fleet.py polls it with the progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import re
import secrets
import shutil
import time
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

from ..errors import ApiError
from ..media_work import WorkSpec, init_worker, run
from .cache import CONTENT_TYPES, MediaCache
from .specs import SpecStore

log = logging.getLogger("mingpian.media")
Status = Literal["queued", "running", "done", "failed", "cancelled"]
LIVE = ("queued", "running")
MAX_JOBS_KEPT = 256
JOB_ID = re.compile(r"^(?:[0-9a-f]{24}|c[0-9a-f]{23})$")  # a render's, or a cache hit's


@dataclass(slots=True)
class Job:
    id: str
    key: str
    fmt: str
    specs: list[WorkSpec]
    status: Status = "queued"
    progress: float = 0.0
    created: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    http_status: int = 200
    task: asyncio.Task[None] | None = None
    control_dir: Path | None = None
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # media/thumbnail → (name, bytes)

    def fail(self, status: Status, err: ApiError) -> None:
        self.status, self.error, self.http_status = status, err.body(), err.status

    def read_progress(self) -> float:
        if self.status == "running" and self.control_dir is not None:
            with contextlib.suppress(OSError, ValueError):
                self.progress = max(self.progress, float((self.control_dir / "progress").read_text()))
        return 1.0 if self.status == "done" else self.progress


def job_view(job: Job, base_url: str) -> dict[str, Any]:
    """A job as `GET /api/jobs/{id}` shows it (docs.py, JOB)."""
    out: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "progress": round(job.read_progress(), 3),
        "format": job.fmt,
        "createdAt": _iso(job.created),
        "links": {"self": f"/api/jobs/{job.id}"},
    }
    if job.finished is not None:
        out["finishedAt"] = _iso(job.finished)
    if job.status == "done":
        for part, (name, size) in job.files.items():
            out[part] = {
                "url": f"{base_url}/media/{name}",
                "path": f"/media/{name}",
                "contentType": CONTENT_TYPES[name.rsplit(".", 1)[1]],
                "bytes": size,
            }
    if job.error is not None:
        out["error"] = job.error
    return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class RenderTimeout(Exception):
    """A render ran past its time limit (its worker was killed)."""

    def __init__(self, limit: float) -> None:
        super().__init__(f"past {limit:g} s")
        self.limit = limit


class JobBoard(Protocol):
    """Where jobs are seen beyond the process that runs them."""

    async def publish(self, job: Job) -> None:
        """The owner: a job was created or changed state. Never raises (a board that cannot
        be reached is logged; the job runs on)."""

    async def lookup(self, job_id: str) -> dict[str, Any] | None:
        """The JSON of a job another process runs, or None."""

    async def cancel(self, job_id: str) -> tuple[bool, dict[str, Any]] | None:
        """Ask the owner of a job another process runs to stop it: (asked, its JSON), asked
        False when it already finished; None for an unknown job."""

    def start(self, jobs: MediaJobs) -> None:
        """Begin applying other processes' cancel requests to this process's jobs."""

    async def close(self) -> None: ...


class LocalBoard:
    """Jobs are seen in their own process only (one server process, or no shared store)."""

    async def publish(self, job: Job) -> None:
        pass

    async def lookup(self, job_id: str) -> dict[str, Any] | None:
        return None

    async def cancel(self, job_id: str) -> tuple[bool, dict[str, Any]] | None:
        return None

    def start(self, jobs: MediaJobs) -> None:
        pass

    async def close(self) -> None:
        pass


class MediaJobs:
    def __init__(
        self,
        cache: MediaCache,
        workers: int,
        concurrency: int,
        ffmpeg: str | None,
        *,
        specs: SpecStore,
        board: JobBoard,
        base_url: str,
        fonts: Path | None = None,
        time_limit: float = 30.0,
        video_time_limit: float = 300.0,
    ) -> None:
        self.cache = cache
        self.fonts = fonts  # the deployment's font folder, for the worker processes
        self.specs = specs
        self.board = board
        self.base_url = base_url
        self.workers = max(1, workers)
        self.limit = asyncio.Semaphore(max(1, concurrency))
        self.ffmpeg = ffmpeg
        self.pool: ProcessPoolExecutor | None = None
        self.time_limit = time_limit  # seconds a picture may take in a worker
        self.video_time_limit = video_time_limit
        self._killed: deque[ProcessPoolExecutor] = deque(maxlen=8)  # pools stopped for a timeout
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.by_key: dict[str, Job] = {}

    def start(self) -> None:
        """Create the pool (its processes start on the first job, not here)."""
        self._pool()
        self.board.start(self)

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # spawn: forking a process that runs an event loop and threads is unsafe.
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(self.ffmpeg, str(self.fonts) if self.fonts else None),
            )
        return self.pool

    def view(self, job: Job) -> dict[str, Any]:
        return job_view(job, self.base_url)

    def live(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.status in LIVE]

    async def submit(self, key: str, fmt: str, specs: list[WorkSpec], *, video: bool = False) -> Job:
        """A job producing every spec's file; an identical job still in flight is reused. The
        job is on the board when this returns (a 202 may name it to any process)."""
        live = self.by_key.get(key)
        if live is not None and live.status in LIVE:
            return live
        job = Job(secrets.token_hex(12), key, fmt, specs)
        if video:
            job.control_dir = self.cache.jobs_root / job.id
            job.control_dir.mkdir(parents=True, exist_ok=True)
            job.specs = [replace(s, control_dir=str(job.control_dir)) for s in specs]
        self.jobs[job.id] = job
        self.by_key[key] = job
        self._trim()
        await self.board.publish(job)
        job.task = asyncio.ensure_future(self._run(job))
        return job

    async def finished(self, job_id: str, key: str, fmt: str, spec: WorkSpec) -> Job | None:
        """A done job for files already in the cache (an async request that hit the cache), so
        async callers see one shape whatever the cache did; None if a file went meanwhile."""
        now = time.time()
        job = Job(job_id, key, fmt, [spec], status="done", progress=1.0, created=now, finished=now)
        if not self._files(job, None):
            return None
        self.jobs[job.id] = job
        self._trim()
        await self.board.publish(job)
        return job

    def _files(self, job: Job, results: list[dict[str, Any]] | None) -> bool:
        """Fill job.files from the first spec (what the job JSON shows): sizes from the
        worker's results, or from the cache for a cache hit."""
        spec = job.specs[0]
        parts = [("media", Path(spec.out), "bytes")]
        if spec.thumb_out:
            parts.append(("thumbnail", Path(spec.thumb_out), "thumbnailBytes"))
        for part, path, size_key in parts:
            if results is not None:
                size = int(results[0][size_key])
            else:
                used = self.cache.use(path)
                if used is None:
                    return False
                size = used[0]
            job.files[part] = (path.name, size)
        return True

    async def _work(self, spec: WorkSpec, limit: float) -> dict[str, Any]:
        """One spec in a worker, stopped at `limit` seconds: the pool's processes are killed
        (a process cannot be interrupted otherwise) and the next job gets a fresh pool. A spec
        whose pool was killed for another job's timeout runs once more on the fresh one."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            pool = self._pool()
            try:
                return await asyncio.wait_for(loop.run_in_executor(pool, partial(run, spec)), limit)
            except TimeoutError:
                self._kill(pool)
                raise RenderTimeout(limit) from None
            except BrokenProcessPool:
                if attempt == 1 and pool in self._killed:
                    continue
                if self.pool is pool:
                    self.pool = None  # a worker died (killed, out of memory): a fresh pool next time
                raise
        raise AssertionError("unreachable")

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        if self.pool is pool:
            self.pool = None
        self._killed.append(pool)
        for proc in list((pool._processes or {}).values()):  # the executor has no public kill
            with contextlib.suppress(OSError):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        log.warning("media render past its time limit: worker processes killed, a new pool starts")

    async def _run(self, job: Job) -> None:
        limit = self.video_time_limit if job.control_dir is not None else self.time_limit
        try:
            async with self.limit:
                job.status = "running"
                await self.board.publish(job)
                results = []
                for spec in job.specs:
                    if job.control_dir is not None and (job.control_dir / "cancel").exists():
                        raise asyncio.CancelledError
                    results.append(await self._work(spec, limit))
                    job.progress = max(job.progress, len(results) / len(job.specs))
            bad = next((r for r in results if not r.get("ok")), None)
            if bad is None:
                await self._record(job, results)  # specs before "done": any process can then serve
                self._files(job, results)
                job.result = {"parts": results}
                job.status = "done"
                job.progress = 1.0
            else:
                job.fail(
                    "cancelled" if bad.get("cancelled") else "failed",
                    ApiError.from_body(int(bad["status"]), bad["error"]),
                )
        except asyncio.CancelledError:
            job.fail("cancelled", ApiError(409, "cancelled", "the render was cancelled"))
        except RenderTimeout as exc:
            job.fail(
                "failed",
                ApiError(
                    422,
                    "render_timeout",
                    f"the media render took longer than its time limit of {exc.limit:g} s and was stopped",
                ),
            )
        except BrokenProcessPool:
            job.fail("failed", ApiError(500, "worker_died", "the media worker process died"))
        except Exception as exc:  # never leave a job "running" forever
            log.exception("media job %s failed", job.id)
            job.fail("failed", ApiError(500, "render_failed", f"{type(exc).__name__}: {exc}"[:300]))
        finally:
            job.finished = time.time()
            if self.by_key.get(job.key) is job:
                del self.by_key[job.key]
            if job.control_dir is not None:
                shutil.rmtree(job.control_dir, ignore_errors=True)
            await self.board.publish(job)

    async def _record(self, job: Job, results: list[dict[str, Any]]) -> None:
        """Keep the render spec of every file the job made (specs.py)."""
        for spec, res in zip(job.specs, results, strict=True):
            if spec.record is None:
                continue
            made = [(Path(spec.out).name, "media", res["sha256"], res["bytes"])]
            if spec.thumb_out:
                made.append(
                    (Path(spec.thumb_out).name, "thumbnail", res["thumbnailSha256"], res["thumbnailBytes"])
                )
            for name, part, digest, size in made:
                record = {**spec.record, "file": name, "part": part, "sha256": digest, "bytes": size}
                try:
                    await self.specs.put(record)
                except Exception as exc:  # the file is made and served here; say what is missing
                    log.error("media %s: its render spec was not kept: %s", name, exc)

    def cancel(self, job: Job) -> bool:
        """Ask a job to stop: a queued one is dropped, a running video stops at its next frame."""
        if job.status not in LIVE:
            return False
        if job.control_dir is not None:
            with contextlib.suppress(OSError):
                (job.control_dir / "cancel").touch()
        if job.status == "queued" and job.task is not None:
            job.task.cancel()
        return True

    async def lookup(self, job_id: str) -> dict[str, Any] | None:
        """A job's JSON: this process's own jobs first, then the board."""
        job = self.jobs.get(job_id)
        if job is not None:
            return self.view(job)
        return await self.board.lookup(job_id) if JOB_ID.match(job_id) else None

    async def cancel_by_id(self, job_id: str) -> tuple[bool, dict[str, Any]] | None:
        """`DELETE /api/jobs/{id}`: (asked, the job's JSON), None for an unknown job."""
        job = self.jobs.get(job_id)
        if job is not None:
            return self.cancel(job), self.view(job)
        return await self.board.cancel(job_id) if JOB_ID.match(job_id) else None

    async def wait(self, job: Job) -> Job:
        if job.task is not None:
            await asyncio.shield(job.task)
        return job

    def _trim(self) -> None:
        while len(self.jobs) > MAX_JOBS_KEPT:
            oldest_id, oldest = next(iter(self.jobs.items()))
            if oldest.status in LIVE:
                break
            del self.jobs[oldest_id]

    async def close(self) -> None:
        for job in list(self.jobs.values()):
            self.cancel(job)
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self.pool is not None:
            pool, self.pool = self.pool, None
            await asyncio.get_running_loop().run_in_executor(
                None, partial(pool.shutdown, wait=True, cancel_futures=True)
            )
