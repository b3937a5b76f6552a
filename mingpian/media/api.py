"""HTTP side of media: `?format=png|jpeg|webp|mp4` renders, `/media/{file}`, `/api/jobs/{id}`,
and `?format=rcs&media=card|video` payloads whose mediaUrl points at rendered media.

`/media/{file}` serves the cached file; a file this host lacks (pruned, or made by another host)
is made again from its render spec when one is kept (specs.py, plans.py), once however many
requests ask for it at the same time."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import NoReturn

from aiohttp import web

from renderer import Media, TemplateStore
from renderer.video import ASPECTS, DEFAULT_WIDTH, MAX_SIDE

from ..api.templates import FormatHandler, RenderRequest, formats_key
from ..errors import ApiError
from ..keys import metrics_key
from ..metrics import Counter
from ..settings import Settings
from .cache import CONTENT_TYPES, EXT_BY_FORMAT, Found, MediaCache, media_key
from .jobs import Job, MediaJobs
from .plans import NotReproducible, Plan, Planner
from .specs import SpecStore

log = logging.getLogger("mingpian.media")
IMMUTABLE = "public, max-age=31536000, immutable"
TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


@dataclass(slots=True)
class MediaService:
    settings: Settings
    cache: MediaCache
    jobs: MediaJobs
    specs: SpecStore
    planner: Planner
    templates: TemplateStore
    counter: Counter | None = None
    remaking: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"{self.settings.base_url}/media/{name}"

    async def local_file(self, url: str) -> tuple[Path, str] | None:
        """(path, content type) of one of our own `/media/…` URLs, made again if this host lacks
        it; None for any other URL (it is never fetched) or one that cannot be made. Used to
        upload a card's media to a MaaP that hosts it."""
        prefix = f"{self.settings.base_url}/media/"
        if not url.startswith(prefix):
            return None
        parsed = self.cache.by_name(url[len(prefix) :])
        if parsed is None:
            return None
        found = self.find(*parsed)
        if found is None:
            try:
                found = await self.remake(*parsed)
            except ApiError:
                return None
        return found.path, CONTENT_TYPES[parsed[1]]

    def count(self, fmt: str, result: str) -> None:
        if self.counter is not None:
            self.counter.inc(fmt, result)

    def find(self, digest: str, ext: str) -> Found | None:
        """The cached file, marked used (its spec's TTL renewed with it); None if absent."""
        found = self.cache.find(digest, ext)
        if found is not None and found.touched:
            self.specs.used(digest)
        return found

    def size(self, path: Path) -> int | None:
        """A cached file's size, marked used; None if absent."""
        used = self.cache.use(path)
        if used is None:
            return None
        if used[1]:
            self.specs.used(path.name.split(".", 1)[0])
        return used[0]

    async def remake(self, digest: str, ext: str) -> Found:
        """Make a file this host lacks again from its kept spec and return it; concurrent
        requests for the same file share one render. ApiError 404 when no spec makes it."""
        name = f"{digest}.{ext}"
        task = self.remaking.get(name)
        if task is None:
            task = asyncio.ensure_future(self._remake(digest, ext))
            self.remaking[name] = task
            task.add_done_callback(partial(self._remade, name))
        await asyncio.shield(task)
        found = self.find(digest, ext)
        if found is None:
            raise ApiError(500, "render_failed", "the media file was removed as soon as it was made")
        return found

    def _remade(self, name: str, task: asyncio.Future[None]) -> None:
        self.remaking.pop(name, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter re-raises it

    async def _remake(self, digest: str, ext: str) -> None:
        name = f"{digest}.{ext}"
        record = await self.specs.get(digest)
        if record is None or record.get("file") != name:
            raise ApiError(404, "not_found", "no such media file", path="file")
        try:
            plan = self.planner.from_record(self.templates, record, digest)
        except NotReproducible as exc:
            log.info("media %s cannot be made again: %s", name, exc)
            raise ApiError(
                404, "not_found", f"media file {name} is gone and cannot be made again: {exc}", path="file"
            ) from None
        if self.cache.existing(digest, ext) is not None:
            return  # made meanwhile (another request, another process on this folder)
        job = await self.jobs.submit(plan.key, plan.fmt, [plan.spec], video=plan.video)
        await self.jobs.wait(job)
        if job.status != "done":
            _failed(job)
        self.count(plan.fmt, "regenerated")


media_service_key = web.AppKey("media_service", MediaService)


# -- query parameters ---------------------------------------------------------------------------
def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be an integer between {lo} and {hi}", path=name
        ) from None
    if not lo <= value <= hi:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be between {lo} and {hi}, got {value}", path=name
        )
    return value


def _float(request: web.Request, name: str, lo: float, hi: float) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be a number between {lo:g} and {hi:g}", path=name
        ) from None
    if not lo <= value <= hi:  # also rejects nan
        raise ApiError(400, "invalid_parameter", f"{name} must be between {lo:g} and {hi:g}", path=name)
    return value


def _choice(request: web.Request, name: str, default: str, choices: tuple[str, ...]) -> str:
    value = request.query.get(name, default) or default
    if value not in choices:
        raise ApiError(
            400,
            "invalid_parameter",
            f"{name} must be one of {', '.join(choices)}, got {value[:40]!r}",
            path=name,
        )
    return value


def _video_params(request: web.Request, rr: RenderRequest) -> tuple[str, int, float | None]:
    """`aspect` (9:16 upright by default, 16:9, 1:1), `width` (its default and bound follow the
    aspect: the longer side is at most 1920 px) and `seconds`."""
    aspect = _choice(request, "aspect", "9:16", tuple(ASPECTS))
    aw, ah = ASPECTS[aspect]
    width = _int(request, "width", DEFAULT_WIDTH[aspect], 240, min(1440, MAX_SIDE * aw // ah))
    seconds = _float(request, "seconds", 0.5, min(10.0, rr.profile.video_max_seconds))
    return aspect, width, seconds


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ApiError(400, "invalid_parameter", f"{name} must be 1 or 0", path=name)


# -- rendering ----------------------------------------------------------------------------------
def _read(path: Path) -> bytes | None:
    """A cached file's bytes; None if it was removed since it was found (pruned elsewhere)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _media_response(
    svc: MediaService, found: Found, body: bytes, cache: str, thumb: Path | None = None
) -> web.Response:
    name = found.path.name
    headers = {
        "ETag": found.etag,
        "Content-Location": f"/media/{name}",
        "X-Media-Url": svc.url(name),
        "X-Cache": cache,
        "X-Content-Type-Options": "nosniff",
    }
    if thumb is not None:
        headers["X-Thumbnail-Url"] = svc.url(thumb.name)
    return web.Response(body=body, content_type=CONTENT_TYPES[found.path.suffix[1:]], headers=headers)


def _failed(job: Job) -> NoReturn:
    if job.error is None:  # a finished job that is not done always has its error
        raise ApiError(500, "render_failed", "render failed")
    raise ApiError.from_body(job.http_status, job.error)


def _job_response(svc: MediaService, job: Job) -> web.Response:
    return web.json_response(svc.jobs.view(job), status=202, headers={"Location": f"/api/jobs/{job.id}"})


def _vanished() -> NoReturn:
    raise ApiError(500, "render_failed", "the media file was removed as soon as it was made")


def make_handler(fmt: str) -> FormatHandler:
    async def handler(rr: RenderRequest) -> web.StreamResponse:
        request = rr.request
        svc = request.app[media_service_key]
        run_async = _flag(request, "async")
        plan: Plan
        if fmt == "mp4":
            aspect, width, seconds = _video_params(request, rr)
            plan = svc.planner.video(rr, width, seconds, aspect=aspect)
        else:
            view = _choice(request, "view", "card", ("card", "media", "overview"))
            width = _int(request, "width", 720, 240, 1440)
            cards = _int(request, "cards", 3, 1, 10)
            card = _int(request, "card", 0, 0, len(rr.message.cards) - 1)
            plan = svc.planner.image(rr, fmt, view, width, cards, card)
        key, spec = plan.key, plan.spec
        ext = EXT_BY_FORMAT[fmt]
        thumb = Path(spec.thumb_out) if spec.thumb_out else None
        hit = svc.find(key, ext)
        if hit is not None and (thumb is None or svc.size(thumb) is not None):
            if run_async:
                done = await svc.jobs.finished(f"c{key[:23]}", key, fmt, spec)
                if done is not None:
                    svc.count(fmt, "hit")
                    return _job_response(svc, done)
            else:
                body = _read(hit.path)
                if body is not None:
                    svc.count(fmt, "hit")
                    return _media_response(svc, hit, body, "hit", thumb)
        svc.count(fmt, "miss")
        job = await svc.jobs.submit(key, fmt, [spec], video=plan.video)
        if run_async:
            return _job_response(svc, job)
        await svc.jobs.wait(job)
        if job.status != "done":
            _failed(job)
        made = svc.find(key, ext)
        body = _read(made.path) if made is not None else None
        if made is None or body is None:
            _vanished()
        return _media_response(svc, made, body, "miss", thumb)

    return handler


def rcs_with_media(original: FormatHandler) -> FormatHandler:
    """`format=rcs&media=card|video`: render each card's media first, then the payload with
    mediaUrl/thumbnailUrl pointing at it and the file sizes filled in."""

    async def handler(rr: RenderRequest) -> web.StreamResponse:
        request = rr.request
        mode = _choice(request, "media", "none", ("none", "card", "video"))
        if mode == "none":
            return await original(rr)
        svc = request.app[media_service_key]
        msg = rr.message
        plans: list[Plan] = []
        for i in range(len(msg.cards)):
            if mode == "card":
                width = _int(request, "width", 720, 240, 1440)
                plans.append(svc.planner.image(rr, "jpeg", "media", width, 1, i))
            else:
                aspect, width, seconds = _video_params(request, rr)
                plans.append(svc.planner.video(rr, width, seconds, card=i, aspect=aspect))
        missing = [
            p.spec
            for p in plans
            if svc.size(Path(p.spec.out)) is None
            or (p.spec.thumb_out is not None and svc.size(Path(p.spec.thumb_out)) is None)
        ]
        svc.count(f"rcs-{mode}", "miss" if missing else "hit")
        if missing:
            job = await svc.jobs.submit(
                media_key({"rcs": [p.key for p in plans]}), f"rcs-{mode}", missing, video=mode == "video"
            )
            await svc.jobs.wait(job)
            if job.status != "done":
                _failed(job)
        cards = []
        for card, plan in zip(msg.cards, plans, strict=True):
            out = Path(plan.spec.out)
            height = card.media.height if card.media is not None else "MEDIUM_HEIGHT"
            media = Media(
                url=svc.url(out.name),
                content_type=CONTENT_TYPES[out.suffix[1:]],
                height=height,
                file_size=_size(svc, out),
                description=card.media.description if card.media is not None else None,
            )
            if plan.spec.thumb_out:
                thumb = Path(plan.spec.thumb_out)
                media = replace(
                    media,
                    thumbnail_url=svc.url(thumb.name),
                    thumbnail_content_type="image/jpeg",
                    thumbnail_file_size=_size(svc, thumb),
                )
            cards.append(replace(card, media=media))
        return await original(replace(rr, message=replace(msg, cards=tuple(cards))))

    return handler


def _size(svc: MediaService, path: Path) -> int:
    size = svc.size(path)
    if size is None:
        _vanished()
    return size


# -- routes -------------------------------------------------------------------------------------
async def get_media(request: web.Request) -> web.StreamResponse:
    svc = request.app[media_service_key]
    parsed = svc.cache.by_name(request.match_info["file"])
    if parsed is None:
        raise ApiError(404, "not_found", "no such media file", path="file")
    digest, ext = parsed
    ctype = CONTENT_TYPES[ext]
    found, source = svc.find(digest, ext), "hit"
    if found is None:
        found, source = await svc.remake(digest, ext), "regenerated"
    inm = request.headers.get("If-None-Match", "")
    if inm.strip() == "*" or found.etag in [t.strip().removeprefix("W/") for t in inm.split(",")]:
        return web.Response(status=304, headers=_media_headers(found, source))
    body = _read(found.path)
    if body is None:  # removed between finding and reading it (another process pruned it)
        found, source = await svc.remake(digest, ext), "regenerated"
        body = _read(found.path)
        if body is None:
            _vanished()
    headers = _media_headers(found, source)
    if "Range" in request.headers:
        try:
            rng = request.http_range
        except ValueError:
            rng = None
        start, stop = (rng.start, rng.stop) if rng is not None else (None, None)
        size = len(body)
        if rng is None or (start is not None and start >= size):
            raise ApiError(
                416,
                "range_not_satisfiable",
                f"Range is outside the file ({size} bytes)",
                headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
            )
        if start is None:  # suffix range: the last N bytes
            start, stop = max(0, size + (stop or 0)), size
        stop = size if stop is None else min(stop, size)
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        return web.Response(status=206, body=body[start:stop], content_type=ctype, headers=headers)
    return web.Response(body=body, content_type=ctype, headers=headers)


def _media_headers(found: Found, source: str) -> dict[str, str]:
    return {
        "ETag": found.etag,
        "Cache-Control": IMMUTABLE,
        "Accept-Ranges": "bytes",
        "X-Cache": source,
        "X-Content-Type-Options": "nosniff",
    }


def _unknown_job() -> NoReturn:
    raise ApiError(404, "not_found", "no such job (finished jobs are forgotten after a while)", path="id")


async def get_job(request: web.Request) -> web.Response:
    view = await request.app[media_service_key].jobs.lookup(request.match_info["id"])
    if view is None:
        _unknown_job()
    return web.json_response(view)


async def delete_job(request: web.Request) -> web.Response:
    outcome = await request.app[media_service_key].jobs.cancel_by_id(request.match_info["id"])
    if outcome is None:
        _unknown_job()
    asked, view = outcome
    if not asked:
        raise ApiError(409, "job_finished", f"job already {view['status']}", path="id")
    return web.json_response(view, status=202)


def register(app: web.Application, svc: MediaService) -> None:
    app[media_service_key] = svc
    svc.counter = app[metrics_key].register(  # type: ignore[assignment]
        Counter(
            "mingpian_media_renders_total",
            "Media render requests by format and cache result.",
            ("format", "cache"),
        )
    )
    handlers = app[formats_key]
    for fmt in ("png", "jpeg", "webp", "mp4"):
        handlers[fmt] = make_handler(fmt)
    handlers["rcs"] = rcs_with_media(handlers["rcs"])
    app.router.add_get("/media/{file}", get_media, name="media")
    app.router.add_get("/api/jobs/{id}", get_job, name="job")
    app.router.add_delete("/api/jobs/{id}", delete_job, name="job_cancel")
