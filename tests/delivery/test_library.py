"""The enterprises' media library over HTTP, on both store backends: uploads checked by their bytes
and re-encoded without metadata, caps and the quota, list / read / delete, and a logo and a
parcel photo from the library showing in the card's PNG, its MP4 (a frame), its RCS payload (a
served URL whose bytes are the file) and a 5G message actually sent."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from PIL import Image, ImageChops

from renderer.video import ffmpeg_exe
from simulators.maap import Simulator

from .support import (
    CMB_KEY,
    OPERATOR,
    RCS_PHONE,
    SF_KEY,
    AppFactory,
    Client,
    approve_latest,
    auth,
    call,
    maap_settings,
    rcs_seed,
    settle,
)

MAGENTA, GREEN = (255, 0, 255), (0, 200, 0)


def picture(
    color: tuple[int, int, int], size: tuple[int, int] = (400, 300), fmt: str = "JPEG", **kw: Any
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt, **kw)
    return buf.getvalue()


def noise(n: int) -> bytes:
    """A picture that does not compress: its size stays near what the quota test needs."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (n, n), os.urandom(n * n * 3)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def video(seconds: float, tmp: Path) -> bytes:
    out = tmp / f"v{seconds}.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=320x240:rate=10",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-metadata", "title=secret-location", str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


async def upload(
    client: Client,
    data: bytes,
    name: str = "photo.jpg",
    ctype: str = "image/jpeg",
    eid: str = "sf",
    key: str = SF_KEY,
) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=name, content_type=ctype)
    r = await client.post(f"/api/enterprises/{eid}/media", data=form, headers=auth(key))
    return r.status, await r.json()


def count(im: Image.Image, color: tuple[int, int, int], tol: int = 60) -> int:
    """Pixels within `tol` of `color` on every channel."""
    bands = im.convert("RGB").split()
    masks = [
        b.point(lambda v, c=c: 255 if abs(v - c) <= tol else 0) for b, c in zip(bands, color, strict=True)
    ]
    both = ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2])
    return int(sum(both.histogram()[255:]))


async def test_uploads_are_checked_by_their_bytes_and_re_encoded(
    make_app: AppFactory, tmp_path: Path
) -> None:
    client = await make_app(library_max_bytes=2_000_000, library_max_seconds=2.0)
    exif = Image.Exif()
    exif[0x010F] = "CameraMaker"  # Make
    exif[0x0131] = "secret-software"  # Software
    status, row = await upload(client, picture(MAGENTA, exif=exif.tobytes()))
    assert status == 201 and row["kind"] == "image" and row["content_type"] == "image/jpeg"
    assert row["ref"] == "media:" + row["id"] and row["url"].endswith(f"/media/library/{row['id']}.jpg")
    stored = await client.get(f"/api/enterprises/sf/media/{row['id']}/content", headers=auth(SF_KEY))
    body = await stored.read()
    assert stored.status == 200 and b"secret-software" not in body and b"CameraMaker" not in body
    assert not Image.open(io.BytesIO(body)).getexif()  # the metadata is gone
    # the same picture again: the same file, not counted twice
    again, row2 = await upload(client, picture(MAGENTA, exif=exif.tobytes()))
    assert again == 200 and row2["id"] == row["id"]
    # the name and the Content-Type say video; the bytes say PNG with transparency: a PNG it is
    rgba = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(rgba, "PNG")
    status, png = await upload(client, rgba.getvalue(), name="clip.mp4", ctype="video/mp4")
    assert status == 201 and png["kind"] == "image" and png["ext"] == "png"
    # refused, each naming the field and what was wrong
    status, err = await upload(
        client, b"<svg xmlns='http://www.w3.org/2000/svg'/>", name="logo.png", ctype="image/png"
    )
    assert status == 415 and err["error"] == "unsupported_media" and err["problems"][0]["path"] == "file"
    status, err = await upload(client, picture(MAGENTA)[:200])  # a JPEG that stops short
    assert status == 422 and err["error"] == "undecodable_media"
    status, err = await upload(client, b"\xff\xd8\xff" + b"\0" * 2_100_000)
    assert status == 413 and err["error"] == "media_too_large" and err["limit"] == "2000000 bytes"
    # videos: re-encoded to H.264 MP4 without their metadata; one over the duration cap refused
    status, clip = await upload(client, video(1.0, tmp_path), name="clip.mov", ctype="video/quicktime")
    assert (
        status == 201 and clip["kind"] == "video" and clip["ext"] == "mp4" and 0.8 <= clip["seconds"] <= 1.2
    )
    served = await client.get(f"/media/library/{clip['id']}.mp4")
    data = await served.read()
    assert served.content_type == "video/mp4" and data[4:8] == b"ftyp" and b"secret-location" not in data
    status, err = await upload(client, video(3.0, tmp_path))
    assert status == 422 and err["error"] == "media_too_long" and err["limit"] == "2 seconds"
    r = await client.post("/api/enterprises/sf/media", json={"file": "x"}, headers=auth(SF_KEY))
    assert r.status == 400 and (await r.json())["error"] == "not_multipart"
    # listed with the bytes used; deleted; its file goes when no one uses it
    listing = await (await client.get("/api/enterprises/sf/media", headers=auth(SF_KEY))).json()
    assert {m["id"] for m in listing["media"]} == {row["id"], png["id"], clip["id"]}
    assert listing["used"] == row["bytes"] + png["bytes"] + clip["bytes"]
    r = await client.delete(f"/api/enterprises/sf/media/{png['id']}", headers=auth(SF_KEY))
    assert r.status == 204
    assert (await client.get(f"/media/library/{png['id']}.png")).status == 404
    assert (await client.get(f"/api/enterprises/sf/media/{png['id']}", headers=auth(SF_KEY))).status == 404


async def test_quota_and_tenant_isolation(make_app: AppFactory) -> None:
    client = await make_app(library_quota=200_000)
    big = noise(300)  # ~80 kB once re-encoded
    status, row = await upload(client, big)
    assert status == 201
    status, err = await upload(client, noise(500))  # ~210 kB more
    assert status == 409 and err["error"] == "quota_exceeded" and err["quota"] == 200_000
    assert err["used"] == row["bytes"]
    # another enterprise sees none of it, and the shared file stays while one owner keeps it
    status, same = await upload(client, big, eid="cmb", key=CMB_KEY)
    assert status == 201 and same["id"] == row["id"]
    for method, path in (
        ("GET", f"/api/enterprises/sf/media/{row['id']}"),
        ("GET", f"/api/enterprises/sf/media/{row['id']}/content"),
        ("DELETE", f"/api/enterprises/sf/media/{row['id']}"),
        ("GET", "/api/enterprises/sf/media"),
    ):
        r = await client.request(method, path, headers=auth(CMB_KEY))
        assert r.status == 404, (method, path)
    assert (
        await client.delete(f"/api/enterprises/cmb/media/{row['id']}", headers=auth(CMB_KEY))
    ).status == 204
    assert (await client.get(f"/media/library/{row['id']}.jpg")).status == 200  # sf still has it
    r = await client.delete("/api/enterprises/sf", headers=auth(OPERATOR))
    assert r.status == 204
    assert (await client.get(f"/media/library/{row['id']}.jpg")).status == 404  # no one has it now


async def _library_card(client: Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """sf's logo and a parcel photo in the library; its hang-up card shows the photo, the
    enterprise its logo."""
    _, logo = await upload(client, picture(GREEN, (200, 200), "PNG"), name="logo.png", ctype="image/png")
    _, photo = await upload(client, picture(MAGENTA))
    # sf has a verified line: its logo changes through a brand change request the operator approves
    r = await client.post(
        "/api/enterprises/sf/brand-requests", json={"changes": {"logo": logo["ref"]}}, headers=auth(SF_KEY)
    )
    assert r.status == 201, await r.text()
    rid = (await r.json())["id"]
    r = await client.post(
        f"/api/enterprises/sf/brand-requests/{rid}/decision", json={"approve": True}, headers=auth(OPERATOR)
    )
    assert r.status == 200, await r.text()
    card = await (await client.get("/api/enterprises/sf/cards/hangup", headers=auth(SF_KEY))).json()
    card["data"] = {**card["data"], "photo_url": photo["ref"]}
    r = await client.put("/api/enterprises/sf/cards/hangup", json=card, headers=auth(SF_KEY))
    assert r.status == 200, await r.text()
    await approve_latest(client, "sf", "hangup")
    return logo, photo


async def test_the_cards_png_mp4_and_rcs_show_the_library_logo_and_photo(make_app: AppFactory) -> None:
    client = await make_app()
    _, photo = await _library_card(client)
    base = "/api/enterprises/sf/cards/hangup/preview"
    r = await client.get(f"{base}?format=png&width=720", headers=auth(SF_KEY))
    assert r.status == 200 and r.content_type == "image/png", await r.text()
    im = Image.open(io.BytesIO(await r.read()))
    assert count(im, MAGENTA) > 20_000  # the parcel photo fills the media slot
    assert count(im, GREEN) > 300  # the logo in the header
    # the same card without the library: neither colour anywhere
    plain = await client.post("/api/templates/courier-hangup/render?format=png&width=720", json=_sample())
    bare = Image.open(io.BytesIO(await plain.read()))
    assert count(bare, MAGENTA) == 0 and count(bare, GREEN) == 0
    # MP4: frames of the video show both
    r = await client.get(f"{base}?format=mp4&width=480&seconds=2", headers=auth(SF_KEY))
    assert r.status == 200 and r.content_type == "video/mp4", await r.text()
    frames = _frames(await r.read())
    assert max(count(f, MAGENTA) for f in frames) > 5_000 and max(count(f, GREEN) for f in frames) > 100
    # RCS: mediaUrl is the served file, with its type and size
    r = await client.get(f"{base}?format=rcs", headers=auth(SF_KEY))
    body = await r.json()
    media = body["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"]["media"]
    assert media["mediaUrl"] == photo["url"] and media["mediaContentType"] == "image/jpeg"
    assert media["mediaFileSize"] == photo["bytes"]
    served = await client.get(f"/media/library/{photo['id']}.jpg")
    assert (
        await served.read()
        == await (
            await client.get(f"/api/enterprises/sf/media/{photo['id']}/content", headers=auth(SF_KEY))
        ).read()
    )
    # another enterprise's key cannot preview sf's card, nor use sf's files in its own
    assert (await client.get(f"{base}?format=png", headers=auth(CMB_KEY))).status == 404


async def test_a_5g_message_carries_the_library_photo(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, server, _ = maap
    client = await make_app(
        rcs_seed(),
        **maap_settings(sim, server),
    )
    _, photo = await _library_card(client)
    await call(client, "lib1", "ended", callee=RCS_PHONE)
    d = await settle(client, "lib1:ended")
    assert d["state"] == "delivered" and d["channel"] == "rcs", d
    [got] = sim.received
    text = str(got.body)
    # the MaaP hosts media: the photo was uploaded to it and the card points at its copy
    [upload] = sim.carrier.uploads
    hosted = got.body["messageList"][0]["contentText"]["message"]["generalPurposeCard"]["content"]["media"]
    assert hosted["mediaUrl"].startswith(str(server.make_url("/files/"))) and "media:" not in text
    served = await client.session.get(hosted["mediaUrl"])
    mine = await client.get(photo["url"][photo["url"].index("/media/library/") :])
    assert upload.dialect == "csp" and await served.read() == await mine.read()


async def test_with_media_hosting_off_the_5g_message_carries_the_library_url(
    make_app: AppFactory, maap: tuple[Simulator, TestServer, list[str]]
) -> None:
    sim, server, _ = maap
    client = await make_app(
        rcs_seed(),
        **maap_settings(sim, server),
        maap_media="off",
    )
    _, photo = await _library_card(client)
    await call(client, "lib2", "ended", callee=RCS_PHONE)
    assert (await settle(client, "lib2:ended"))["channel"] == "rcs"
    [got] = sim.received
    assert photo["url"] in str(got.body) and sim.carrier.uploads == []


def _sample() -> dict[str, Any]:
    from .support import sample

    return sample("courier-hangup")


def _frames(mp4: bytes) -> list[Image.Image]:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "v.mp4"
        src.write_bytes(mp4)
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-i", str(src), "-vf", "fps=4", str(Path(tmp) / "f%03d.png")],
            check=True,
        )
        return [Image.open(p).copy() for p in sorted(Path(tmp).glob("f*.png"))]


async def _raw_upload(
    client: Client, disposition: bytes, data: bytes, before: bytes = b""
) -> tuple[int, dict[str, Any]]:
    """POST one multipart part (after the raw parts `before`) with its Content-Disposition exactly
    as given (bytes), over a socket to the real server: no client library tidies the header."""
    body = (
        before + b"--BB\r\nContent-Disposition: " + disposition + b"\r\nContent-Type: image/jpeg\r\n\r\n"
        + data + b"\r\n--BB--\r\n"
    )  # fmt: skip
    head = (
        f"POST /api/enterprises/sf/media HTTP/1.1\r\nHost: mingpian\r\nAuthorization: Bearer {SF_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary=BB\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in headers.lower(), answer[:300]
    return int(status_line.split()[1]), json.loads(payload)


async def test_chinese_file_names_are_kept_and_broken_part_headers_are_a_400(make_app: AppFactory) -> None:
    client = await make_app()
    shades = iter(range(0, 250, 10))  # a new picture each time: every upload is a 201
    # RFC 7578: the name as raw UTF-8; RFC 5987: filename*=UTF-8''percent-encoded
    for disposition, name in (
        ('form-data; name="file"; filename="门店照片.jpg"'.encode(), "门店照片.jpg"),
        (
            b"form-data; name=\"file\"; filename*=UTF-8''%E9%97%A8%E5%BA%97%E7%85%A7%E7%89%87.jpg",
            "门店照片.jpg",
        ),
        (b'form-data; name="file"; filename="\xff\xfe\xe9.jpg"', ".jpg"),  # not UTF-8: what is printable
    ):
        status, row = await _raw_upload(client, disposition, picture((200, 40, next(shades))))
        assert status == 201 and row["name"] == name, (disposition, status, row)
    # part headers HTTP does not allow: a 400 naming the upload, never a 500
    for disposition in (
        'form-data; name="file"; filename="门\x00店.jpg"'.encode(),  # NUL
        b'form-data; name="file"; filename="a\x01b.jpg"',  # a control character
        'form-data; name="file"\r\n名字: 门店'.encode(),  # a header name that is not a token
        b'form-data; name="file"\r\nno colon here',
    ):
        status, err = await _raw_upload(client, disposition, picture((10, 40, next(shades))))
        assert status == 400 and err["error"] == "not_multipart", (disposition, status, err)
    status, err = await _raw_upload(
        client, 'form-data; name="文件"; filename="a.jpg"'.encode(), picture(GREEN)
    )
    assert status == 400 and err["error"] == "not_multipart" and err["problems"][0]["path"] == "file"
    listing = await (await client.get("/api/enterprises/sf/media", headers=auth(SF_KEY))).json()
    assert len(listing["media"]) == 3  # nothing of the refused uploads was kept
