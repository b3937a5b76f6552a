"""Media on a fleet: render specs kept with the hash, files made again where they are missing
(another host, or pruned), the pruner, and jobs seen and cancelled from any server process.
Two apps with their own cache folders stand for two hosts; they share one real redis-server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.media import media_service_key
from mingpian.media.prune import Pruner
from mingpian.settings import Settings
from tests.support.client import ClientFactory
from tests.support.templates import TEMPLATES

Client = TestClient[Any, web.Application]
COURIER = json.loads((TEMPLATES / "courier-hangup" / "sample.json").read_text("utf-8"))
CAROUSEL = json.loads((TEMPLATES / "ad-carousel" / "sample.json").read_text("utf-8"))
RENDER = "/api/templates/{}/render"


def _settings(settings: Settings, tmp_path: Path, host: str, **kw: Any) -> Settings:
    return settings.with_(
        data_dir=tmp_path / host,
        media_workers=1,
        media_concurrency=1,
        public_base_url="https://cdn.example.cn/mp",
        **kw,
    )


@pytest.fixture
async def fleet(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path, redis_url: str
) -> tuple[Client, Client]:
    """Hosts A and B: own cache folders, one Redis."""
    shared = {"media_store": "redis", "redis_url": redis_url}
    a = await aiohttp_client(create_app(_settings(settings, tmp_path, "a", **shared)))
    b = await aiohttp_client(create_app(_settings(settings, tmp_path, "b", **shared)))
    return a, b


@pytest.fixture
async def solo(aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path) -> Client:
    """One host, no Redis (`media_store=local`, the default)."""
    return await aiohttp_client(create_app(_settings(settings, tmp_path, "solo")))


async def _post(c: Client, name: str, query: str, data: Any) -> Any:
    return await c.post(RENDER.format(name) + "?" + query, json=data)


def _media_dir(c: Client) -> Path:
    return c.app[media_service_key].cache.root


async def _poll(c: Client, path: str, until: Any, timeout: float = 60) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        r = await c.get(path)
        assert r.status == 200, await r.text()
        job = await r.json()
        if until(job):
            return job
        assert loop.time() < end, job
        await asyncio.sleep(0.05)


# -- specs and regeneration -------------------------------------------------------------------
async def test_media_made_by_host_a_is_served_by_host_b_byte_identical(
    fleet: tuple[Client, Client], redis_url: str
) -> None:
    a, b = fleet
    queries = [
        ("courier-hangup", "format=png&width=480", COURIER),
        ("courier-hangup", "format=jpeg&width=360", COURIER),
        ("ad-carousel", "format=webp&view=media&card=1&width=300", CAROUSEL),
    ]
    for name, query, data in queries:
        made = await _post(a, name, query, data)
        assert made.status == 200 and made.headers["X-Cache"] == "miss"
        path = made.headers["Content-Location"]
        body = await made.read()
        assert not (_media_dir(b) / path.removeprefix("/media/")).exists()
        got = await b.get(path)
        assert got.status == 200, await got.text()
        assert await got.read() == body
        assert got.headers["ETag"] == made.headers["ETag"] == f'"{path[7:39]}"'
        assert got.headers["X-Cache"] == "regenerated"
        assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        again = await b.get(path)
        assert again.headers["X-Cache"] == "hit" and await again.read() == body
        assert (await b.get(path, headers={"If-None-Match": got.headers["ETag"]})).status == 304

    # The spec is in Redis with a TTL (media_spec_max_age) and beside the file on both hosts.
    digest = path[7:39]
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        spec = json.loads(await r.get(f"mp:media:spec:{digest}"))
        ttl = await r.ttl(f"mp:media:spec:{digest}")
    finally:
        await r.aclose()
    assert spec["template"] == "ad-carousel" and spec["data"] == CAROUSEL and spec["part"] == "media"
    assert spec["render"] == {"format": "webp", "view": "media", "width": 300, "cards": 3, "card": 1}
    assert 0 < ttl <= 30 * 86400
    for host in (a, b):
        assert (
            json.loads((_media_dir(host) / "specs" / f"{digest}.json").read_text())["sha256"]
            == spec["sha256"]
        )


async def test_video_and_thumbnail_made_by_a_are_served_by_b_byte_identical(
    fleet: tuple[Client, Client],
) -> None:
    a, b = fleet
    made = await _post(a, "courier-hangup", "format=mp4&width=256&seconds=0.8", COURIER)
    assert made.status == 200
    video = await made.read()
    thumb_path = made.headers["X-Thumbnail-Url"].removeprefix("https://cdn.example.cn/mp")
    thumb = await (await a.get(thumb_path)).read()
    # B is asked for the thumbnail first: making it again makes the video too.
    got_thumb = await b.get(thumb_path)
    assert got_thumb.status == 200 and await got_thumb.read() == thumb
    assert got_thumb.headers["X-Cache"] == "regenerated"
    got = await b.get(made.headers["Content-Location"])
    assert got.headers["X-Cache"] == "hit" and await got.read() == video
    assert got.headers["ETag"] == made.headers["ETag"]
    part = await b.get(made.headers["Content-Location"], headers={"Range": "bytes=0-99"})
    assert part.status == 206 and await part.read() == video[:100]


async def test_rcs_media_urls_from_a_work_on_b(fleet: tuple[Client, Client]) -> None:
    a, b = fleet
    r = await _post(a, "ad-carousel", "format=rcs&media=card&width=320", CAROUSEL)
    content = (await r.json())["messageList"][0]["contentText"]["message"]["generalPurposeCardCarousel"][
        "content"
    ]
    for card in content:
        media = card["media"]
        got = await b.get(media["mediaUrl"].removeprefix("https://cdn.example.cn/mp"))
        assert got.status == 200 and len(await got.read()) == media["mediaFileSize"]


async def test_a_pruned_file_is_made_again_byte_identical(solo: Client) -> None:
    """Without Redis: the sidecar in the cache folder makes it again on the same host."""
    svc = solo.app[media_service_key]
    made = {}
    for query in (
        "format=png&width=400",
        "format=jpeg&width=400",
        "format=webp&width=400",
        "format=mp4&width=256&seconds=0.6",
    ):
        r = await _post(solo, "courier-hangup", query, COURIER)
        assert r.status == 200
        made[r.headers["Content-Location"]] = (await r.read(), r.headers["ETag"])
        if "X-Thumbnail-Url" in r.headers:
            tpath = r.headers["X-Thumbnail-Url"].removeprefix("https://cdn.example.cn/mp")
            t = await solo.get(tpath)
            made[tpath] = (await t.read(), t.headers["ETag"])
    pruned = Pruner(svc.cache, max_bytes=1, max_age=0, spec_max_age=0, grace=0).prune()
    assert pruned.files == 5 and pruned.kept_files == 0 and pruned.specs == 0
    assert (
        not list(_media_dir(solo).glob("*.*")) and len(list((_media_dir(solo) / "specs").glob("*.json"))) == 5
    )
    for path, (body, etag) in made.items():
        got = await solo.get(path)
        assert got.status == 200, (path, await got.text())
        assert await got.read() == body, path
        assert got.headers["ETag"] == etag and got.headers["X-Cache"] in ("regenerated", "hit")


async def test_concurrent_requests_for_a_missing_file_share_one_render(solo: Client) -> None:
    svc = solo.app[media_service_key]
    r = await _post(solo, "courier-hangup", "format=png&width=300", COURIER)
    body, path = await r.read(), r.headers["Content-Location"]
    (_media_dir(solo) / path.removeprefix("/media/")).unlink()
    jobs_before = len(svc.jobs.jobs)
    answers = await asyncio.gather(*(solo.get(path) for _ in range(5)))
    assert [a.status for a in answers] == [200] * 5
    assert all([await a.read() == body for a in answers])
    assert len(svc.jobs.jobs) == jobs_before + 1
    assert svc.counter is not None and svc.counter.values[("png", "regenerated")] == 1


async def test_no_spec_or_an_edited_template_is_404(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path, scratch_templates: Path
) -> None:
    c = await aiohttp_client(create_app(_settings(settings, tmp_path, "t", template_dir=scratch_templates)))
    r = await _post(c, "courier-hangup", "format=png&width=300", COURIER)
    path = r.headers["Content-Location"]
    file = _media_dir(c) / path.removeprefix("/media/")
    file.unlink()
    (_media_dir(c) / "specs" / file.name.replace(".png", ".json")).unlink()
    gone = await c.get(path)
    assert gone.status == 404 and (await gone.json())["error"] == "not_found"

    r = await _post(c, "courier-hangup", "format=png&width=301", COURIER)
    path = r.headers["Content-Location"]
    (_media_dir(c) / path.removeprefix("/media/")).unlink()
    card = scratch_templates / "courier-hangup" / "card.yaml"
    card.write_text(card.read_text("utf-8") + "\n# edited\n", "utf-8")
    edited = await c.get(path)
    assert edited.status == 404
    body = await edited.json()
    assert body["error"] == "not_found" and "has changed" in body["message"], body


async def test_bad_names_stay_json_404_with_a_shared_store(fleet: tuple[Client, Client]) -> None:
    a, _ = fleet
    for name in ("..%2f..%2fetc%2fpasswd", "0123456789abcdef0123456789abcdef.json", "x.png"):
        r = await a.get("/media/" + name)
        assert r.status == 404 and (await r.json())["error"] == "not_found"
    unknown = await a.get("/media/0123456789abcdef0123456789abcdef.png")
    assert unknown.status == 404 and (await unknown.json())["error"] == "not_found"
    bad = await _post(a, "courier-hangup", "format=png&width=9", COURIER)
    assert bad.status == 400 and (await bad.json())["problems"][0]["path"] == "width"


async def test_other_bytes_made_again_get_an_etag_of_their_own(
    fleet: tuple[Client, Client], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """If a host's renderer makes other bytes than the first host's (another ffmpeg or Pillow
    build), the copy is served under its own strong ETag: one ETag, one sequence of bytes."""
    a, b = fleet
    made = await _post(a, "courier-hangup", "format=png&width=320", COURIER)
    path = made.headers["Content-Location"]
    digest = path[7:39]
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        spec = json.loads(await r.get(f"mp:media:spec:{digest}"))
        await r.set(f"mp:media:spec:{digest}", json.dumps({**spec, "sha256": "0" * 64}))
    finally:
        await r.aclose()
    with caplog.at_level(logging.WARNING, logger="mingpian.media"):
        got = await b.get(path)
    assert got.status == 200 and await got.read() == await made.read()
    etag = got.headers["ETag"]
    assert etag != made.headers["ETag"] and etag.startswith(f'"{digest}-')
    assert "made again with other bytes" in caplog.text
    assert (await b.get(path)).headers["ETag"] == etag
    assert (await b.get(path, headers={"If-None-Match": etag})).status == 304


async def test_an_unreachable_store_is_a_json_503(
    fleet: tuple[Client, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = fleet
    made = await _post(a, "courier-hangup", "format=png&width=330", COURIER)
    job = await (await _post(a, "courier-hangup", "format=png&width=331&async=1", COURIER)).json()
    link = b.app[media_service_key].specs.link  # type: ignore[attr-defined]

    def down(*args: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_exception(ConnectionError("Redis is down"))
        return fut

    monkeypatch.setattr(link, "call", down)
    monkeypatch.setattr(link, "script", lambda *args: down())
    for r in (
        await b.get(made.headers["Content-Location"]),
        await b.get(job["links"]["self"]),
        await b.delete(job["links"]["self"]),
    ):
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert (await r.json())["error"] == "http_error"
    # What B has itself it still serves; A's own jobs answer from A's memory.
    assert (await b.get("/healthz")).status == 200
    assert (await a.get(job["links"]["self"])).status == 200


# -- pruning ------------------------------------------------------------------------------------
def test_pruner_respects_size_and_age(tmp_path: Path) -> None:
    from mingpian.media.cache import MediaCache

    cache = MediaCache(tmp_path / "media")
    cache.ensure()
    now = time.time()

    def put(name: str, size: int, age: float, folder: Path = cache.root) -> Path:
        p = folder / name
        p.write_bytes(b"x" * size)
        os.utime(p, (now - age, now - age))
        return p

    h = [f"{i:032x}" for i in range(8)]
    ancient = put(f"{h[0]}.png", 100, 10 * 86400)  # past max_age
    old = put(f"{h[1]}.mp4", 400, 3 * 86400)  # oldest within the age: first to go for size
    mid = put(f"{h[2]}.jpg", 300, 2 * 86400)
    new = put(f"{h[3]}.webp", 300, 3600)
    fresh = put(f"{h[4]}.png", 500, 10)  # within the grace period: kept even over the size
    writing = put(f".{h[5]}.png.123.tmp", 900, 10)  # a render being written
    leftover = put(f".{h[6]}.png.99.tmp", 900, 2 * 3600)  # an interrupted render's
    other = put("README", 50, 100 * 86400)  # not a media name: never touched
    old_spec = put(f"{h[0]}.json", 10, 40 * 86400, cache.specs_root)
    spec = put(f"{h[1]}.json", 10, 10 * 86400, cache.specs_root)

    out = Pruner(cache, max_bytes=1000, max_age=7 * 86400, spec_max_age=30 * 86400).prune(now)
    # Age first (ancient), then least recently used until at most 1000 bytes (old, mid).
    assert not ancient.exists() and not old.exists() and not mid.exists()
    assert new.exists() and fresh.exists()
    assert writing.exists() and not leftover.exists() and other.exists()
    assert not old_spec.exists() and spec.exists()
    assert (out.files, out.bytes, out.specs, out.leftovers) == (3, 800, 1, 1)
    assert (out.kept_files, out.kept_bytes) == (2, 800)

    # A file used within the grace period stays even when the cache is over its size.
    out = Pruner(cache, max_bytes=100, max_age=0, spec_max_age=0).prune(now)
    assert not new.exists() and fresh.exists() and (out.kept_files, out.kept_bytes) == (1, 500)
    # No limits: nothing goes.
    assert Pruner(cache, 0, 0, 0, grace=0).prune(now).files == 0 and fresh.exists() and spec.exists()
    out = Pruner(cache, max_bytes=100, max_age=0, spec_max_age=0, grace=0).prune(now)
    assert not fresh.exists() and out.kept_bytes == 0


async def test_serving_a_file_marks_it_used(solo: Client) -> None:
    r = await _post(solo, "courier-hangup", "format=png&width=250", COURIER)
    path = r.headers["Content-Location"]
    file = _media_dir(solo) / path.removeprefix("/media/")
    spec = _media_dir(solo) / "specs" / file.name.replace(".png", ".json")
    week = time.time() - 7 * 86400
    for p in (file, spec):
        os.utime(p, (week, week))
    assert (await solo.get(path)).status == 200
    assert file.stat().st_mtime > time.time() - 60 and spec.stat().st_mtime > time.time() - 60


# -- jobs across processes ----------------------------------------------------------------------
async def test_a_job_on_a_is_seen_on_b_with_progress_and_cancelled_from_b(
    fleet: tuple[Client, Client],
) -> None:
    a, b = fleet
    r = await _post(a, "courier-hangup", "format=mp4&width=960&seconds=10&async=1", COURIER)
    assert r.status == 202
    job = await r.json()
    link = job["links"]["self"]
    seen = await (await b.get(link)).json()  # visible on B as soon as A answered 202
    assert seen["id"] == job["id"] and seen["status"] in ("queued", "running")
    running = await _poll(b, link, lambda j: j["status"] == "running" and j["progress"] > 0)
    assert 0 < running["progress"] < 1
    d = await b.delete(link)
    assert d.status == 202, await d.text()
    assert (await d.json())["status"] in ("queued", "running")
    done = await _poll(b, link, lambda j: j["status"] not in ("queued", "running"))
    assert done["status"] == "cancelled" and done["error"]["error"] == "cancelled" and "media" not in done
    on_a = await (await a.get(link)).json()
    assert on_a["status"] == "cancelled"
    again = await b.delete(link)
    assert again.status == 409 and (await again.json())["error"] == "job_finished"
    assert (await b.get("/api/jobs/nope")).status == 404
    assert (await b.delete("/api/jobs/nope")).status == 404


async def test_a_finished_job_on_a_shows_its_media_on_b(fleet: tuple[Client, Client]) -> None:
    a, b = fleet
    r = await _post(a, "courier-hangup", "format=png&width=260&async=1", COURIER)
    job = await r.json()
    done = await _poll(b, job["links"]["self"], lambda j: j["status"] == "done")
    assert done["progress"] == 1.0 and done["media"]["contentType"] == "image/png"
    local = await (await a.get(job["links"]["self"])).json()
    assert done["media"] == local["media"]
    got = await b.get(done["media"]["path"])
    assert got.status == 200 and len(await got.read()) == done["media"]["bytes"]
    # An async request answered from the cache is a job too, seen everywhere.
    hit = await (await _post(a, "courier-hangup", "format=png&width=260&async=1", COURIER)).json()
    assert hit["status"] == "done"
    assert (await (await b.get(hit["links"]["self"])).json())["media"] == done["media"]


async def test_without_redis_jobs_stay_in_their_process(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path, solo: Client
) -> None:
    other = await aiohttp_client(create_app(_settings(settings, tmp_path, "other")))
    job = await (await _post(solo, "courier-hangup", "format=png&width=270&async=1", COURIER)).json()
    assert (await solo.get(job["links"]["self"])).status == 200
    assert (await other.get(job["links"]["self"])).status == 404
