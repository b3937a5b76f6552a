"""The studio in a real Chromium shows a media library photo: an enterprise uploads it over the
API, a designer types its `media:<id>` into the card's photo field, and both the 5G phone (the
served library file) and the rendered picture show it (pixels checked on screenshots)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageChops

from mingpian.settings import PROJECT_ROOT, Settings
from tests.support.browser import PageProbe, ServerThread

OPERATOR = "mpk_studio-operator-key-0123456789ab"
SF_KEY = "mpk_studio-sf-key-0123456789abcdef"
MAGENTA = (255, 0, 255)


def magenta_pixels(png: bytes) -> int:
    bands = Image.open(io.BytesIO(png)).convert("RGB").split()
    masks = [
        b.point(lambda v, c=c: 255 if abs(v - c) <= 60 else 0) for b, c in zip(bands, MAGENTA, strict=True)
    ]
    return int(sum(ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2]).histogram()[255:]))


def test_a_library_photo_shows_in_the_studio(browser: Any, tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        yaml.safe_dump(
            {
                "operator_keys": [OPERATOR],
                "enterprises": [{"id": "sf", "name": "顺丰速运", "signature": "顺丰速运", "keys": [SF_KEY]}],
            },
            allow_unicode=True,
        ),
        "utf-8",
    )
    settings = Settings(
        template_dir=PROJECT_ROOT / "card_templates",
        data_dir=tmp_path / "var",
        delivery_seed=str(seed),
        log_format="text",
        log_level="WARNING",
    )
    server = ServerThread(settings).start()
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    context.set_default_timeout(20_000)
    pg = context.new_page()
    probe = PageProbe(pg)
    try:
        buf = io.BytesIO()
        Image.new("RGB", (480, 320), MAGENTA).save(buf, "JPEG")
        resp = context.request.post(
            f"{server.url}/api/enterprises/sf/media",
            headers={"Authorization": f"Bearer {SF_KEY}"},
            multipart={"file": {"name": "parcel.jpg", "mimeType": "image/jpeg", "buffer": buf.getvalue()}},
        )
        assert resp.status == 201, resp.text()
        media = resp.json()
        pg.goto(f"{server.url}/t/courier-hangup")
        pg.wait_for_selector("main[data-ready=true]")
        pg.locator("#phone-image img.rendered").wait_for()
        first_picture = pg.get_attribute("#phone-image img.rendered", "src")
        before = int(pg.eval_on_selector("main", "m => m.dataset.renders || 0"))
        pg.locator('[data-path="$.photo_url"]').locator("input").first.fill(media["ref"])
        pg.wait_for_function(f"() => Number(document.querySelector('main').dataset.renders || 0) > {before}")
        # the 5G phone: the card's media is the served library file, loaded
        img = pg.locator("#phone-rcs .media img")
        img.wait_for()
        assert img.get_attribute("src") == f"/media/library/{media['id']}.jpg"
        pg.wait_for_function("() => document.querySelector('#phone-rcs .media img').naturalWidth > 0")
        assert magenta_pixels(img.screenshot()) > 2_000
        # the rendered picture of the card shows the photo too
        pg.wait_for_function(
            "(old) => { const i = document.querySelector('#phone-image img.rendered');"
            " return i && i.getAttribute('src') !== old && i.complete && i.naturalWidth > 0; }",
            arg=first_picture,
        )
        assert magenta_pixels(pg.locator("#phone-image img.rendered").screenshot()) > 2_000
    finally:
        context.close()
        server.stop()
    assert probe.errors == [] and probe.dialogs == []
