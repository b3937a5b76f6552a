"""Every shipped template's sample data, rendered to every target through the HTTP API: no box
glyph, no text overflowing or cut off, no single-character last line, no lint warning; pictures
match the goldens in tests/renderer/goldens/ (within a tolerance) and are saved with a video
frame under test-artifacts/templates/ for a person to look at."""

from __future__ import annotations

import io
import os
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from PIL import Image, ImageChops

from chatbot.flows import FlowStore
from mingpian.lint import lint_templates
from mingpian.settings import PROJECT_ROOT
from renderer import TemplateStore, get_profile
from renderer.fonts import face
from renderer.glyphs import glyph_problems
from renderer.image import PAD_DP, PHONE_DP, _layout_card
from renderer.textlayout import NO_END, NO_START, wrap
from tests.support.templates import TEMPLATES

STORE = TemplateStore(TEMPLATES, reload_interval=0)
FLOWS = FlowStore(PROJECT_ROOT / "chatbots")
NAMES = STORE.names()
GOLDENS = PROJECT_ROOT / "tests" / "renderer" / "goldens"
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "templates"
TEXT_FORMATS = ("rcs", "ussd", "flash", "sms")
GOLDEN_WIDTH = 360


def _content(line: str) -> int:
    return sum(1 for ch in line if not ch.isspace() and ch not in NO_START and ch not in NO_END)


def test_every_template_is_covered() -> None:
    assert len(NAMES) >= 11


@pytest.mark.parametrize("name", NAMES)
def test_sample_has_no_undrawable_character_and_no_lint_problem(name: str) -> None:
    t = STORE.get(name)
    msg = t.render(t.sample)
    assert glyph_problems(msg, t.sample) == []
    # every button answered by a shipped flow (W060) is part of "no lint problem"
    assert lint_templates(STORE, [name], get_profile("default"), FLOWS) == []


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("width", [360, 720, 1080])
def test_card_text_fits_is_not_cut_and_has_no_orphan(name: str, width: int) -> None:
    t = STORE.get(name)
    msg = t.render(t.sample)
    s = width / PHONE_DP
    inner = width - 2 * round(PAD_DP * s) - 2 * round(PAD_DP * s)
    for card in msg.cards:
        lay = _layout_card(card, width - 2 * round(PAD_DP * s), s, 8)
        for block, f in ((lay.title, lay.title_face), (lay.desc, lay.desc_face)):
            if block is None:
                continue
            assert not block.truncated, (name, block.lines)
            for line in block.lines:
                assert f.width(line.rstrip("".join(NO_START))) <= inner + 0.5, (name, line)
        for paragraph in (card.description or "").strip().split("\n"):
            lines = wrap(paragraph, lay.desc_face, inner).lines
            if len(lines) > 1:
                assert _content(lines[-1]) >= 2, (name, width, lines)
        bf = face(max(8, round(14 * s)), "bold")
        for sug in card.suggestions:
            assert bf.width(sug.text) <= inner, (name, sug.text)


@pytest.mark.parametrize("name", NAMES)
async def test_every_target_renders_the_sample(client: TestClient[Any, Any], name: str) -> None:
    t = STORE.get(name)
    for fmt in TEXT_FORMATS:
        resp = await client.post(f"/api/templates/{name}/render?format={fmt}&lint=1", json=t.sample)
        assert resp.status == 200, (fmt, await resp.text())
        if fmt == "rcs":
            assert (await resp.json())["warnings"] == []
    pictures: dict[str, Image.Image] = {}
    for fmt in ("png", "jpeg", "webp"):
        resp = await client.post(
            f"/api/templates/{name}/render?format={fmt}&width={GOLDEN_WIDTH}", json=t.sample
        )
        assert resp.status == 200, (fmt, await resp.text())
        pictures[fmt] = Image.open(io.BytesIO(await resp.read())).convert("RGB")
    resp = await client.post(f"/api/templates/{name}/render?format=mp4&width=360&seconds=1", json=t.sample)
    assert resp.status == 200, await resp.text()
    assert (await resp.read())[4:8] == b"ftyp"
    thumb = await client.get(urlsplit(resp.headers["X-Thumbnail-Url"]).path)
    assert thumb.status == 200
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pictures["png"].save(ARTIFACTS / f"{name}.png")
    (ARTIFACTS / f"{name}-video.jpg").write_bytes(await thumb.read())
    _compare_golden(name, pictures["png"])


def _compare_golden(name: str, im: Image.Image) -> None:
    golden = GOLDENS / f"{name}.png"
    if os.environ.get("MINGPIAN_UPDATE_GOLDENS") == "1" or not golden.exists():
        if os.environ.get("CI") and not golden.exists():
            pytest.fail(f"no golden for {name}: run with MINGPIAN_UPDATE_GOLDENS=1 and commit it")
        GOLDENS.mkdir(parents=True, exist_ok=True)
        im.save(golden, optimize=True)
        return
    ref = Image.open(golden).convert("RGB")
    assert ref.size == im.size, f"{name}: {im.size} against the golden's {ref.size}"
    diff = ImageChops.difference(ref, im).convert("L").point(lambda v: 255 if v > 48 else 0)
    changed = diff.histogram()[255]
    assert changed <= 0.005 * im.width * im.height, f"{name}: {changed} pixels differ from the golden"
