"""Media over HTTP: renders in the worker pool, cache, /media serving, jobs, RCS media URLs."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from mingpian.app import create_app
from mingpian.settings import Settings
from tests.support.client import ClientFactory
from tests.support.templates import TEMPLATES

Client = TestClient[Any, web.Application]
COURIER = json.loads((TEMPLATES / "courier-hangup" / "sample.json").read_text("utf-8"))
CAROUSEL = json.loads((TEMPLATES / "ad-carousel" / "sample.json").read_text("utf-8"))
RENDER = "/api/templates/{}/render"


@pytest.fixture
def media_settings(settings: Settings) -> Settings:
    return settings.with_(media_workers=1, media_concurrency=1, public_base_url="https://cdn.example.cn/mp/")


@pytest.fixture
async def mc(aiohttp_client: ClientFactory, media_settings: Settings) -> Client:
    return await aiohttp_client(create_app(media_settings))


async def _post(c: Client, name: str, query: str, data: Any) -> Any:
    return await c.post(RENDER.format(name) + "?" + query, json=data)


async def _wait_done(c: Client, job: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while job["status"] in ("queued", "running"):
        assert loop.time() < end, job
        await asyncio.sleep(0.05)
        job = await (await c.get(job["links"]["self"])).json()
    return job


async def test_png_render_then_cache_hit_then_immutable_media_url(mc: Client) -> None:
    r1 = await _post(mc, "courier-hangup", "format=png&width=480", COURIER)
    assert r1.status == 200 and r1.content_type == "image/png"
    body = await r1.read()
    assert Image.open(io.BytesIO(body)).size[0] == 480
    assert r1.headers["X-Cache"] == "miss"
    url = r1.headers["X-Media-Url"]
    assert url.startswith("https://cdn.example.cn/mp/media/") and url.endswith(".png")

    r2 = await _post(mc, "courier-hangup", "format=png&width=480", COURIER)
    assert r2.headers["X-Cache"] == "hit" and await r2.read() == body
    assert r2.headers["ETag"] == r1.headers["ETag"]

    path = r1.headers["Content-Location"]
    got = await mc.get(path)
    assert got.status == 200 and got.content_type == "image/png" and await got.read() == body
    assert got.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = got.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    nm = await mc.get(path, headers={"If-None-Match": etag})
    assert nm.status == 304 and nm.headers["ETag"] == etag and await nm.read() == b""

    other = await _post(mc, "courier-hangup", "format=png&width=481", COURIER)
    assert other.headers["X-Cache"] == "miss" and other.headers["ETag"] != etag
    changed = await _post(mc, "courier-hangup", "format=png&width=480", {**COURIER, "status": "已签收"})
    assert changed.headers["ETag"] != etag


async def test_jpeg_webp_and_media_slot_view(mc: Client) -> None:
    for fmt, ctype in (("jpeg", "image/jpeg"), ("webp", "image/webp")):
        r = await _post(mc, "courier-hangup", f"format={fmt}&width=360", COURIER)
        assert r.status == 200 and r.content_type == ctype
        assert (await mc.get(r.headers["Content-Location"])).content_type == ctype
    slot = await _post(mc, "ad-carousel", "format=png&view=media&card=2&width=480", CAROUSEL)
    assert Image.open(io.BytesIO(await slot.read())).size == (480, 240)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("format=png&width=100", "width"),
        ("format=png&width=9999", "width"),
        ("format=png&width=abc", "width"),
        ("format=png&view=poster", "view"),
        ("format=png&cards=0", "cards"),
        ("format=png&card=9", "card"),
        ("format=png&async=maybe", "async"),
        ("format=mp4&seconds=11", "seconds"),
        ("format=mp4&seconds=nan", "seconds"),
        ("format=mp4&width=20000", "width"),
        ("format=rcs&media=gif", "media"),
        ("format=gif", "format"),
    ],
)
async def test_bad_parameters_are_json_400_naming_the_parameter(mc: Client, query: str, param: str) -> None:
    r = await _post(mc, "courier-hangup", query, COURIER)
    assert r.status == 400
    body = await r.json()
    assert body["problems"][0]["path"] == param, body


async def test_bad_data_is_422_before_any_media_work(mc: Client) -> None:
    r = await _post(mc, "courier-hangup", "format=png", {"waybill": 5})
    assert r.status == 422 and (await r.json())["error"] == "data_invalid"


@pytest.mark.parametrize(
    "name",
    [
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e%2fsettings.py",
        "0123456789abcdef0123456789abcdef.exe",
        "0123456789ABCDEF0123456789ABCDEF.png",
        "0123456789abcdef0123456789abcdef.png",
        "x.png",
        "0123456789abcdef0123456789abcdef.png%00.txt",
    ],
)
async def test_media_names_cannot_escape_the_cache(mc: Client, name: str) -> None:
    r = await mc.get("/media/" + name)
    assert r.status == 404
    assert (await r.json())["error"] == "not_found"


async def test_mp4_async_job_progress_then_served_with_ranges(mc: Client) -> None:
    r = await _post(mc, "courier-hangup", "format=mp4&width=320&seconds=1&async=1", COURIER)
    assert r.status == 202
    job = await r.json()
    assert r.headers["Location"] == job["links"]["self"] and job["status"] in ("queued", "running")
    job = await _wait_done(mc, job)
    assert job["status"] == "done" and job["progress"] == 1.0
    assert job["media"]["contentType"] == "video/mp4" and job["thumbnail"]["contentType"] == "image/jpeg"
    video = await mc.get(job["media"]["path"])
    data = await video.read()
    assert video.content_type == "video/mp4" and len(data) == job["media"]["bytes"] and data[4:8] == b"ftyp"
    part = await mc.get(job["media"]["path"], headers={"Range": "bytes=0-99"})
    assert part.status == 206 and await part.read() == data[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(data)}"
    tail = await mc.get(job["media"]["path"], headers={"Range": "bytes=-10"})
    assert await tail.read() == data[-10:]
    bad = await mc.get(job["media"]["path"], headers={"Range": f"bytes={len(data) + 5}-"})
    assert bad.status == 416
    assert bad.headers["Content-Range"] == f"bytes */{len(data)}"
    assert (await bad.json())["error"] == "range_not_satisfiable"
    thumb = await mc.get(job["thumbnail"]["path"])
    assert thumb.content_type == "image/jpeg"

    # Same request again: served from cache, synchronously.
    again = await _post(mc, "courier-hangup", "format=mp4&width=320&seconds=1", COURIER)
    assert again.headers["X-Cache"] == "hit" and await again.read() == data
    cached_job = await (
        await _post(mc, "courier-hangup", "format=mp4&width=320&seconds=1&async=1", COURIER)
    ).json()
    assert cached_job["status"] == "done" and cached_job["media"]["path"] == job["media"]["path"]


async def test_cancel_a_running_video_and_healthz_answers_meanwhile(mc: Client) -> None:
    r = await _post(mc, "courier-hangup", "format=mp4&width=960&seconds=10&async=1", COURIER)
    job = await r.json()
    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while job["status"] == "queued" or job["progress"] == 0:
        assert loop.time() < end
        health = await mc.get("/healthz")  # the loop keeps answering while the worker renders
        assert health.status == 200
        await asyncio.sleep(0.05)
        job = await (await mc.get(job["links"]["self"])).json()
    assert job["status"] == "running" and 0 < job["progress"] < 1
    d = await mc.delete(job["links"]["self"])
    assert d.status == 202
    job = await _wait_done(mc, await d.json())
    assert job["status"] == "cancelled" and job["error"]["error"] == "cancelled"
    assert "media" not in job
    again = await mc.delete(job["links"]["self"])
    assert again.status == 409
    assert (await mc.get("/api/jobs/nope")).status == 404
    assert (await mc.delete("/api/jobs/nope")).status == 404


async def test_sync_video_waits_and_concurrent_identical_requests_share_a_job(
    mc: Client, media_settings: Settings
) -> None:
    q = "format=mp4&width=256&seconds=0.8"
    r1, r2 = await asyncio.gather(
        _post(mc, "bank-identity", q, _sample("bank-identity")),
        _post(mc, "bank-identity", q, _sample("bank-identity")),
    )
    assert r1.status == r2.status == 200
    assert {r1.headers["X-Cache"], r2.headers["X-Cache"]} == {"miss"}
    assert await r1.read() == await r2.read()
    assert len(list((media_settings.data_dir / "media").glob("*.mp4"))) == 1


def _sample(name: str) -> Any:
    return json.loads((TEMPLATES / name / "sample.json").read_text("utf-8"))


async def test_rcs_payload_points_at_rendered_media(mc: Client) -> None:
    r = await _post(mc, "ad-carousel", "format=rcs&media=card&width=480", CAROUSEL)
    assert r.status == 200
    body = await r.json()
    content = body["messageList"][0]["contentText"]["message"]["generalPurposeCardCarousel"]["content"]
    assert len(content) == 3
    for card in content:
        media = card["media"]
        assert media["mediaUrl"].startswith("https://cdn.example.cn/mp/media/")
        assert media["mediaContentType"] == "image/jpeg"
        got = await mc.get(media["mediaUrl"].removeprefix("https://cdn.example.cn/mp"))
        assert len(await got.read()) == media["mediaFileSize"]
    assert len({c["media"]["mediaUrl"] for c in content}) == 3  # one picture per card

    v = await _post(mc, "courier-hangup", "format=rcs&media=video&width=256&seconds=1", COURIER)
    assert v.status == 200
    vbody = await v.json()
    media = vbody["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"]["media"]
    assert media["mediaContentType"] == "video/mp4" and media["thumbnailContentType"] == "image/jpeg"
    for url_key, size_key in (("mediaUrl", "mediaFileSize"), ("thumbnailUrl", "thumbnailFileSize")):
        got = await mc.get(media[url_key].removeprefix("https://cdn.example.cn/mp"))
        assert got.status == 200 and len(await got.read()) == media[size_key]

    plain = await (await _post(mc, "courier-hangup", "format=rcs", COURIER)).json()
    assert "cdn.example.cn" not in json.dumps(plain)


async def test_broken_svg_template_is_a_422_with_the_file(
    aiohttp_client: ClientFactory, media_settings: Settings, scratch_templates: Path
) -> None:
    (scratch_templates / "courier-hangup" / "card.svg.j2").write_text(
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><text>&x;</text></svg>',
        "utf-8",
    )
    c = await aiohttp_client(create_app(media_settings.with_(template_dir=scratch_templates)))
    r = await _post(c, "courier-hangup", "format=png", COURIER)
    assert r.status == 422
    body = await r.json()
    assert body["problems"][0]["file"].endswith("card.svg.j2") and "DOCTYPE" in body["message"]
    assert "root:" not in await r.text()


async def test_openapi_describes_media(mc: Client) -> None:
    doc = await (await mc.get("/api/openapi.json")).json()
    render = doc["paths"]["/api/templates/{name}/render"]["post"]
    names = {p["name"] for p in render["parameters"]}
    assert {"width", "view", "seconds", "async", "media"} <= names
    assert "image/png" in render["responses"]["200"]["content"] and "202" in render["responses"]
    assert "/media/{file}" in doc["paths"] and "delete" in doc["paths"]["/api/jobs/{id}"]
