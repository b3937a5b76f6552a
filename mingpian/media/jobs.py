"""Media jobs: a process pool, a concurrency limit, progress and cancellation.

Rendering (Pillow drawing, ffmpeg encoding) runs in worker processes so the event loop keeps
answering `/healthz` and API calls. A semaphore bounds how many renders run at once (memory: a
720p video job holds ~30 MB of frames and an ffmpeg). Identical requests in flight share one
job. Video workers report progress through a small file in the job's folder and stop when a
`cancel` file appears there (a file works across processes without a manager process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import secrets
import shutil
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from ..errors import ApiError
from ..media_work import WorkSpec, init_worker, run
from .cache import MediaCache

log = logging.getLogger("mingpian.media")
Status = Literal["queued", "running", "done", "failed", "cancelled"]
MAX_JOBS_KEPT = 256


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

    def fail(self, status: Status, err: ApiError) -> None:
        self.status, self.error, self.http_status = status, err.body(), err.status

    def read_progress(self) -> float:
        if self.status == "running" and self.control_dir is not None:
            with contextlib.suppress(OSError, ValueError):
                self.progress = max(self.progress, float((self.control_dir / "progress").read_text()))
        return 1.0 if self.status == "done" else self.progress


class MediaJobs:
    def __init__(self, cache: MediaCache, workers: int, concurrency: int, ffmpeg: str | None) -> None:
        self.cache = cache
        self.workers = max(1, workers)
        self.limit = asyncio.Semaphore(max(1, concurrency))
        self.ffmpeg = ffmpeg
        self.pool: ProcessPoolExecutor | None = None
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.by_key: dict[str, Job] = {}

    def start(self) -> None:
        """Create the pool (its processes start on the first job, not here)."""
        self._pool()

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # spawn: forking a process that runs an event loop and threads is unsafe.
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(self.ffmpeg,),
            )
        return self.pool

    def submit(self, key: str, fmt: str, specs: list[WorkSpec], *, video: bool = False) -> Job:
        """A job producing every spec's file; an identical job still in flight is reused."""
        live = self.by_key.get(key)
        if live is not None and live.status in ("queued", "running"):
            return live
        job = Job(secrets.token_hex(12), key, fmt, specs)
        if video:
            job.control_dir = self.cache.jobs_root / job.id
            job.control_dir.mkdir(parents=True, exist_ok=True)
            job.specs = [_with_control(s, job.control_dir) for s in specs]
        self.jobs[job.id] = job
        self.by_key[key] = job
        job.task = asyncio.ensure_future(self._run(job))
        self._trim()
        return job

    async def _run(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with self.limit:
                job.status = "running"
                results = []
                for spec in job.specs:
                    if job.control_dir is not None and (job.control_dir / "cancel").exists():
                        raise asyncio.CancelledError
                    results.append(await loop.run_in_executor(self._pool(), partial(run, spec)))
                    job.progress = max(job.progress, len(results) / len(job.specs))
            bad = next((r for r in results if not r.get("ok")), None)
            if bad is None:
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
        except BrokenProcessPool:
            self.pool = None  # a worker died (killed, out of memory): start a fresh pool next time
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

    def cancel(self, job: Job) -> bool:
        """Ask a job to stop: a queued one is dropped, a running video stops at its next frame."""
        if job.status not in ("queued", "running"):
            return False
        if job.control_dir is not None:
            with contextlib.suppress(OSError):
                (job.control_dir / "cancel").touch()
        if job.status == "queued" and job.task is not None:
            job.task.cancel()
        return True

    async def wait(self, job: Job) -> Job:
        if job.task is not None:
            await asyncio.shield(job.task)
        return job

    def _trim(self) -> None:
        while len(self.jobs) > MAX_JOBS_KEPT:
            oldest_id, oldest = next(iter(self.jobs.items()))
            if oldest.status in ("queued", "running"):
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


def _with_control(spec: WorkSpec, control: Path) -> WorkSpec:
    from dataclasses import replace

    return replace(spec, control_dir=str(control))
