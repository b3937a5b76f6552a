"""Characters no font draws: `mingpian lint` names the field, and the studio's render gets warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from mingpian.app import create_app
from mingpian.settings import Settings
from tests.server.test_cli import run
from tests.support.client import ClientFactory
from tests.support.templates import write_template

CARD = "card:\n  title: '{{ name }}'\n  description: 'Linear A 𐘀 in the template'\n"
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}


def test_lint_names_the_sample_path_and_the_card_field_of_an_undrawable_character(tmp_path: Path) -> None:
    write_template(tmp_path, "rare", CARD, SCHEMA, {"name": "王𰀀 🌻 𪚥"})
    write_template(tmp_path, "fine", "card:\n  title: '{{ name }}'\n", SCHEMA, {"name": "𪚥喆堃 👨‍👩‍👧 🇨🇳"})
    out = run("--templates", str(tmp_path), "lint")
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(f"{tmp_path}/rare/sample.json: W050 $.name:" in ln and "U+30000" in ln for ln in lines), lines
    assert any(
        f"{tmp_path}/rare/card.yaml: W050 cards[0].description:" in ln and "U+10600" in ln for ln in lines
    ), lines
    assert not any("fine/" in ln for ln in lines), lines
    assert out.stderr == "检查了 2 个模板，发现 2 个问题\n"


async def test_the_studio_render_carries_warnings_only_when_asked(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    write_template(tmp_path, "rare", CARD, SCHEMA, {"name": "王𰀀"})
    app = create_app(Settings(template_dir=tmp_path, data_dir=tmp_path / "var", reload_interval=0.0))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    resp = await client.post("/api/templates/rare/render?lint=1", json={"name": "王𰀀"})
    assert resp.status == 200
    warnings = (await resp.json())["warnings"]
    assert [(w["code"], w["path"]) for w in warnings] == [
        ("uncovered_character", "$.name"),
        ("uncovered_character", "cards[0].description"),
    ]
    plain = await (await client.post("/api/templates/rare/render", json={"name": "王"})).json()
    assert "warnings" not in plain


async def test_the_studio_render_names_buttons_no_flow_answers(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    card = (
        "card:\n  title: 我\n  suggestions:\n"
        "    - reply: {text: 点个赞, postback: 'show:like'}\n"
        "    - reply: {text: 没人管, postback: 'mine:nobody'}\n"
        "chips:\n  - reply: {text: 也没人管, postback: 'mine:chip'}\n"
    )
    write_template(tmp_path, "mine", card)
    app = create_app(Settings(template_dir=tmp_path, data_dir=tmp_path / "var", reload_interval=0.0))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    body = await (await client.post("/api/templates/mine/render?lint=1", json={})).json()
    lost = [w for w in body["warnings"] if w["code"] == "unanswered_button"]
    assert [(w["path"], w["postback"]) for w in lost] == [
        ("cards[0].suggestions[1]", "mine:nobody"),
        ("chips[0]", "mine:chip"),
    ]
    assert lost[0]["message"].startswith("没有聊天机器人流程回答按钮「没人管」")
    empty = tmp_path / "no-bots"
    empty.mkdir()
    quiet = create_app(
        Settings(template_dir=tmp_path, data_dir=tmp_path / "var2", reload_interval=0.0, chatbot_dir=empty)
    )
    other: TestClient[Any, Any] = await aiohttp_client(quiet)
    body = await (await other.post("/api/templates/mine/render?lint=1", json={})).json()
    assert body["warnings"] == []  # no chatbot here: nothing to mark
