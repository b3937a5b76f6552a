"""HTTP side of media: `?format=png|jpeg|webp|mp4` renders, `/media/{file}`, `/api/jobs/{id}`,
and `?format=rcs&media=card|video` payloads whose mediaUrl points at rendered media."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from aiohttp import web

from renderer import Media, Message
from renderer.image import ImageOptions
from renderer.video import VideoOptions

from ..api.templates import FormatHandler, RenderRequest, formats_key
from ..errors import ApiError
from ..keys import metrics_key
from ..media_work import WorkSpec
from ..metrics import Counter
from ..settings import Settings
from .cache import CONTENT_TYPES, EXT_BY_FORMAT, MediaCache, media_key, thumb_key
from .jobs import Job, MediaJobs

IMMUTABLE = "public, max-age=31536000, immutable"
TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


@dataclass(slots=True)
class MediaService:
    settings: Settings
    cache: MediaCache
    jobs: MediaJobs
    counter: Counter | None = None

    def url(self, name: str) -> str:
        return f"{self.settings.base_url}/media/{name}"

    def count(self, fmt: str, result: str) -> None:
        if self.counter is not None:
            self.counter.inc(fmt, result)


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


def _flag(request: web.Request, name: str) -> bool:
    raw = request.query.get(name, "").lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise ApiError(400, "invalid_parameter", f"{name} must be 1 or 0", path=name)


# -- rendering ----------------------------------------------------------------------------------
def _spec(
    svc: MediaService, rr: RenderRequest, kind: str, message: Message, out: Path, **kw: Any
) -> WorkSpec:
    return WorkSpec(
        kind=kind,
        message=message,
        template_dir=str(rr.template.folder),
        assets_dir=str(svc.settings.assets_dir),
        out=str(out),
        data=rr.data,
        **kw,
    )


def _base_parts(rr: RenderRequest) -> dict[str, Any]:
    return {"template": rr.template.name, "templateVersion": rr.template.version, "data": rr.data}


def video_spec(
    svc: MediaService,
    rr: RenderRequest,
    message: Message,
    width: int,
    seconds: float | None,
    card: int | None = None,
) -> tuple[str, WorkSpec]:
    p = rr.profile
    opts = VideoOptions(
        width=width, seconds=seconds, max_bytes=p.video_max_bytes, max_seconds=min(10.0, p.video_max_seconds)
    )
    key = media_key(
        {
            **_base_parts(rr),
            "kind": "video",
            "card": card,
            "width": width,
            "seconds": seconds,
            "maxBytes": p.video_max_bytes,
            "maxSeconds": opts.max_seconds,
        }
    )
    spec = _spec(
        svc,
        rr,
        "video",
        message,
        svc.cache.path(key, "mp4"),
        video=opts,
        thumb_out=str(svc.cache.path(thumb_key(key), "jpg")),
    )
    return key, spec


def image_spec(
    svc: MediaService, rr: RenderRequest, fmt: str, view: str, width: int, cards: int, card: int
) -> tuple[str, WorkSpec]:
    opts = ImageOptions(width=width, fmt=fmt, max_cards=cards)  # type: ignore[arg-type]
    parts = {**_base_parts(rr), "kind": view, "fmt": fmt, "width": width}
    parts.update({"cards": cards} if view == "card" else {"card": card})
    key = media_key(parts)
    kind = "card" if view == "card" else "slot"
    return key, _spec(
        svc, rr, kind, rr.message, svc.cache.path(key, EXT_BY_FORMAT[fmt]), image=opts, card_index=card
    )


def job_json(svc: MediaService, job: Job) -> dict[str, Any]:
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
    if job.status == "done" and job.specs:
        spec = job.specs[0]
        name = Path(spec.out).name
        out["media"] = {
            "url": svc.url(name),
            "path": f"/media/{name}",
            "contentType": CONTENT_TYPES[name.rsplit(".", 1)[1]],
            "bytes": Path(spec.out).stat().st_size,
        }
        if spec.thumb_out:
            tname = Path(spec.thumb_out).name
            out["thumbnail"] = {
                "url": svc.url(tname),
                "path": f"/media/{tname}",
                "contentType": "image/jpeg",
                "bytes": Path(spec.thumb_out).stat().st_size,
            }
    if job.error is not None:
        out["error"] = job.error
    return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _media_response(
    svc: MediaService, path: Path, digest: str, cache: str, thumb: Path | None = None
) -> web.Response:
    ext = path.suffix[1:]
    headers = {
        "ETag": f'"{digest}"',
        "Content-Location": f"/media/{path.name}",
        "X-Media-Url": svc.url(path.name),
        "X-Cache": cache,
        "X-Content-Type-Options": "nosniff",
    }
    if thumb is not None:
        headers["X-Thumbnail-Url"] = svc.url(thumb.name)
    return web.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[ext], headers=headers)


def _failed(job: Job) -> NoReturn:
    if job.error is None:  # a finished job that is not done always has its error
        raise ApiError(500, "render_failed", "render failed")
    raise ApiError.from_body(job.http_status, job.error)


def _finished_job(svc: MediaService, key: str, fmt: str, spec: WorkSpec) -> Job:
    """A job record for a cache hit, so async callers see one shape whatever the cache did."""
    now = time.time()
    job = Job(
        id=f"c{key[:23]}",
        key=key,
        fmt=fmt,
        specs=[spec],
        status="done",
        progress=1.0,
        created=now,
        finished=now,
    )
    svc.jobs.jobs[job.id] = job
    return job


def make_handler(fmt: str) -> FormatHandler:
    async def handler(rr: RenderRequest) -> web.StreamResponse:
        request = rr.request
        svc = request.app[media_service_key]
        run_async = _flag(request, "async")
        if fmt == "mp4":
            width = _int(request, "width", 1280, 240, 1440)
            seconds = _float(request, "seconds", 0.5, min(10.0, rr.profile.video_max_seconds))
            key, spec = video_spec(svc, rr, rr.message, width, seconds)
            ext = "mp4"
        else:
            view = _choice(request, "view", "card", ("card", "media"))
            width = _int(request, "width", 720, 240, 1440)
            cards = _int(request, "cards", 3, 1, 10)
            card = _int(request, "card", 0, 0, len(rr.message.cards) - 1)
            key, spec = image_spec(svc, rr, fmt, view, width, cards, card)
            ext = EXT_BY_FORMAT[fmt]
        hit = svc.cache.existing(key, ext)
        thumb = Path(spec.thumb_out) if spec.thumb_out else None
        if hit is not None and (thumb is None or thumb.is_file()):
            svc.count(fmt, "hit")
            if run_async:
                job = _finished_job(svc, key, fmt, spec)
                return web.json_response(
                    job_json(svc, job), status=202, headers={"Location": f"/api/jobs/{job.id}"}
                )
            return _media_response(svc, hit, key, "hit", thumb)
        svc.count(fmt, "miss")
        job = svc.jobs.submit(key, fmt, [spec], video=fmt == "mp4")
        if run_async:
            return web.json_response(
                job_json(svc, job), status=202, headers={"Location": f"/api/jobs/{job.id}"}
            )
        await svc.jobs.wait(job)
        if job.status != "done":
            _failed(job)
        return _media_response(svc, Path(spec.out), key, "miss", thumb)

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
        specs: list[tuple[str, WorkSpec]] = []
        for i, card in enumerate(msg.cards):
            if mode == "card":
                width = _int(request, "width", 720, 240, 1440)
                specs.append(image_spec(svc, rr, "jpeg", "media", width, 1, i))
            else:
                width = _int(request, "width", 1280, 240, 1440)
                seconds = _float(request, "seconds", 0.5, min(10.0, rr.profile.video_max_seconds))
                one = replace(msg, kind="card", cards=(card,), chips=())
                specs.append(video_spec(svc, rr, one, width, seconds, card=i))
        missing = [
            s
            for k, s in specs
            if not Path(s.out).is_file() or (s.thumb_out is not None and not Path(s.thumb_out).is_file())
        ]
        svc.count(f"rcs-{mode}", "miss" if missing else "hit")
        if missing:
            job = svc.jobs.submit(
                media_key({"rcs": [k for k, _ in specs]}), f"rcs-{mode}", missing, video=mode == "video"
            )
            await svc.jobs.wait(job)
            if job.status != "done":
                _failed(job)
        cards = []
        for card, (_, spec) in zip(msg.cards, specs, strict=True):
            out = Path(spec.out)
            height = card.media.height if card.media is not None else "MEDIUM_HEIGHT"
            media = Media(
                url=svc.url(out.name),
                content_type=CONTENT_TYPES[out.suffix[1:]],
                height=height,
                file_size=out.stat().st_size,
                description=card.media.description if card.media is not None else None,
            )
            if spec.thumb_out:
                thumb = Path(spec.thumb_out)
                media = replace(
                    media,
                    thumbnail_url=svc.url(thumb.name),
                    thumbnail_content_type="image/jpeg",
                    thumbnail_file_size=thumb.stat().st_size,
                )
            cards.append(replace(card, media=media))
        return await original(replace(rr, message=replace(msg, cards=tuple(cards))))

    return handler


# -- routes -------------------------------------------------------------------------------------
async def get_media(request: web.Request) -> web.StreamResponse:
    svc = request.app[media_service_key]
    found = svc.cache.by_name(request.match_info["file"])
    if found is None:
        raise ApiError(404, "not_found", "no such media file", path="file")
    path, digest, ctype = found
    etag = f'"{digest}"'
    headers = {
        "ETag": etag,
        "Cache-Control": IMMUTABLE,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
    }
    inm = request.headers.get("If-None-Match", "")
    if inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]:
        return web.Response(status=304, headers=headers)
    body = path.read_bytes()
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


def _job(request: web.Request) -> Job:
    svc = request.app[media_service_key]
    job = svc.jobs.jobs.get(request.match_info["id"])
    if job is None:
        raise ApiError(
            404, "not_found", "no such job (jobs are kept in memory, most recent first)", path="id"
        )
    return job


async def get_job(request: web.Request) -> web.Response:
    return web.json_response(job_json(request.app[media_service_key], _job(request)))


async def delete_job(request: web.Request) -> web.Response:
    svc = request.app[media_service_key]
    job = _job(request)
    if not svc.jobs.cancel(job):
        raise ApiError(409, "job_finished", f"job already {job.status}", path="id")
    return web.json_response(job_json(svc, job), status=202)


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
