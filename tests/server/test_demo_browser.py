"""The first hour of a fresh clone, in Chromium: `mingpian serve` on a fresh data folder with
nothing configured prints how to sign in; the printed key signs in to the console on the demo's
模拟来电 page, where a call to each demo phone brings the card over the simulated network (a 5G
card, card SMS, USSD text, SMS after USSD and flash failed), a tap on the 5G card gets the bot's
answer, and the reports count what was sent. Screenshots in test-artifacts/demo/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mingpian.demo.phones import LINE, PHONES
from mingpian.settings import PROJECT_ROOT
from tests.support.browser import PageProbe
from tests.support.processes import free_port

SHOTS = PROJECT_ROOT / "test-artifacts" / "demo"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh clone: no MINGPIAN_* setting but those given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}
    return {**env, **extra}


class Serve:
    """`mingpian serve` in a child process; its printed lines as they come."""

    def __init__(self, data: Path, **env: str) -> None:
        self.port = free_port()
        data.parent.mkdir(parents=True, exist_ok=True)
        self._err = (data.parent / "serve.err").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"],
            env=clean_env(MINGPIAN_PORT=str(self.port), MINGPIAN_DATA_DIR=str(data), **env),
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.lines: list[str] = []
        self.err = data.parent / "serve.err"

    def read_until(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        assert self.proc.stdout is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(pattern, "\n".join(self.lines))
            if found:
                return found
            line = self.proc.stdout.readline()
            if not line:  # the end: the server stopped
                break
            self.lines.append(line.rstrip("\n"))
        raise AssertionError(f"never printed {pattern!r}: {self.lines[-5:]}, {self.err.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    srv = Serve(tmp_path_factory.mktemp("demo") / "var")
    yield srv
    srv.stop()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def place_call(page: Any, number: str) -> str:
    page.select_option("select[name=phone]", number)
    page.click("button:has-text('拨打')")
    page.wait_for_selector(".sim-steps[data-done]", state="attached", timeout=30_000)
    done = str(page.get_attribute(".sim-steps", "data-done"))
    return done if done in ("delivered", "displayed") else f"{done}: {page.inner_text('main')[:600]}"


def test_a_fresh_clone_signs_in_with_the_printed_key_and_watches_cards_arrive(
    browser: Any, demo: Serve
) -> None:
    url = demo.read_until(r"控制台：(http://127\.0\.0\.1:\d+/console\S*)").group(1)
    key = demo.read_until(r"运营方密钥：(mpk_\S+)").group(1)
    link = demo.read_until(r"一次性登录链接：(http://127\.0\.0\.1:\d+/console/demo/\S+)").group(1)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    probe = PageProbe(page)
    studio = page_text(url.split("/console")[0] + "/")
    assert 'href="/console#/e/feihong/simulate">模拟来电</a>' in studio  # the studio links the page
    page.goto(link)  # signed in as the operator, on 模拟来电
    page.wait_for_selector("main[data-ready=simulate]")
    assert "模拟来电" in page.inner_text("#nav")
    by_kind = {p.kind: p.number for p in PHONES}

    # a 5G phone: the rich card, then a tap on 改约派送 answered by the courier bot
    assert place_call(page, by_kind["rcs"]) == "delivered"
    page.wait_for_selector("#phone-rcs .card-title")
    assert "您的快递派送中" in page.inner_text("#phone-rcs")
    assert "5G 消息：已送达" in page.inner_text(".sim-steps")
    shot(page, "01-5g-card")
    page.click("#phone-rcs button.sugg:has-text('改约派送')")
    page.wait_for_selector("#phone-rcs .card-title:has-text('请选择新的派送时间')", timeout=15_000)
    page.wait_for_selector("text=机器人已回答")
    shot(page, "02-bot-answer")

    # a card-SMS phone: 5G skipped, the SMS with its parse link drawn as a card
    assert place_call(page, by_kind["cardsms"]) == "displayed"
    steps = page.inner_text(".sim-steps")
    assert "5G 消息：跳过" in steps and "卡片短信：已显示" in steps
    page.wait_for_selector("#phone-cardsms .card-sms")
    assert "km2g.cn/" in page.inner_text("#phone-cardsms")
    shot(page, "03-card-sms")

    # a feature phone: USSD text, and its numbered reply sent back through the SMSC
    assert place_call(page, by_kind["ussd"]) == "delivered"
    page.wait_for_selector("#phone-ussd .legacy-text")
    assert "回复3 改约派送" in page.inner_text("#phone-ussd .legacy-text")
    assert "USSD：已送达" in page.inner_text(".sim-steps")
    page.fill("#phone-ussd input.legacy-input", "3")
    page.press("#phone-ussd input.legacy-input", "Enter")
    page.wait_for_selector("text=回复的数字计为按钮点击")
    shot(page, "04-ussd")

    # a phone where USSD and flash fail: SMS, each fall-over shown as a step
    assert place_call(page, by_kind["fallback"]) == "delivered"
    steps = page.inner_text(".sim-steps")
    assert "USSD：失败，转下一渠道" in steps and "闪信：失败，转下一渠道" in steps and "短信：已送达" in steps
    page.wait_for_selector("#phone-sms .legacy-text")
    assert "您的快递派送中" in page.inner_text("#phone-sms .legacy-text")
    assert page.get_attribute("#phone-ussd", "data-received") == "1"  # the failed USSD is shown too
    shot(page, "05-sms-fallback")

    # the SMS's card-page link opens the H5 card, where 改约派送 gets the courier bot's answer
    with page.context.expect_page() as opened:
        page.click("#phone-sms .sim-links a")
    card_page = opened.value
    card_page.wait_for_selector("text=您的快递派送中")
    card_page.click("button:has-text('改约派送')")
    card_page.wait_for_selector("text=请选择新的派送时间", timeout=15_000)
    shot(card_page, "05b-card-page-bot-answer")
    card_page.close()

    # the reports: what was sent, per channel, and the tap
    page.click("a:has-text('到报表里看这次发送')")
    page.wait_for_selector("main[data-ready=reports]")
    report = page.inner_text("main")
    assert "5G 消息" in report and "卡片短信" in report and "USSD" in report
    assert "改约派送" in report  # the 5G tap and the USSD reply "3", counted as taps
    shot(page, "06-reports")
    assert probe.errors == [], probe.errors

    # the link works once; then the printed key signs in, on the console URL printed
    other = browser.new_context().new_page()
    other.goto(link)
    other.wait_for_selector("main[data-ready=signin]")
    other.goto(url)
    other.wait_for_selector("main[data-ready=signin]")
    other.fill("input[name=key]", key)
    other.press("input[name=key]", "Enter")
    other.wait_for_selector("main[data-ready=simulate]")
    other.context.close()


def test_a_restart_keeps_the_key_and_does_not_duplicate_the_demo(tmp_path: Path) -> None:
    data = tmp_path / "var"
    first = Serve(data)
    key = first.read_until(r"运营方密钥：(mpk_\S+)").group(1)
    time.sleep(1.5)  # the cards registered as card-SMS templates, the vendors' answers called back
    first.stop()
    again = Serve(data)
    try:
        assert again.read_until(r"运营方密钥：(mpk_\S+)").group(1) == key
        base = f"http://127.0.0.1:{again.port}"
        status, body = status_of(f"{base}/api/enterprises", key)
        assert status == 200, body
        ids = [e["id"] for e in body["enterprises"]]
        assert ids.count("feihong") == 1, body
        status, body = status_of(f"{base}/api/enterprises/feihong/cards", key)
        assert sorted(c["id"] for c in body["cards"]) == ["hangup", "pre"], body
        # the card-SMS platform kept its template: a card-SMS phone is drawn the card at once
        phone = next(p.number for p in PHONES if p.kind == "cardsms")
        call = {"call_id": "after-restart", "caller": LINE, "callee": phone, "phase": "ended"}
        req = urllib.request.Request(
            f"{base}/api/calls",
            data=json.dumps(call).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).close()
        end = time.monotonic() + 15
        while time.monotonic() < end:
            _, got = status_of(f"{base}/api/calls/after-restart", key)
            if got and got["deliveries"][0]["state"] != "active":
                break
            time.sleep(0.2)
        assert (got["deliveries"][0]["state"], got["deliveries"][0]["channel"]) == ("displayed", "cardsms"), (
            got
        )
        _, inbox = status_of(f"{base}/api/demo/phones/{urllib.parse.quote(phone)}", key)
        assert "FH8800012345678" in " ".join(inbox["messages"][-1]["card_sms"]["texts"]), inbox
    finally:
        again.stop()


@pytest.mark.parametrize(
    "env",
    [
        {"MINGPIAN_DELIVERY_OPERATOR_KEY": "mpk_operator-own-key-0123456789"},
        {"MINGPIAN_DELIVERY_SMPP": "127.0.0.1:1"},
        {"MINGPIAN_MAAP_URL": "http://127.0.0.1:1"},
        {"MINGPIAN_HOST": "0.0.0.0"},
        {"MINGPIAN_DEMO": "off"},
    ],
    ids=["operator-key", "smpp", "maap", "not-loopback", "off"],
)
def test_a_configured_server_runs_no_demo(tmp_path: Path, env: dict[str, str]) -> None:
    srv = Serve(tmp_path / "var", **env)
    try:
        srv.read_until("名片服务已在")
        time.sleep(0.3)  # anything printed with the banner is read too
        assert srv.proc.poll() is None
        text = "\n".join(srv.lines)
        assert "演示模式" not in text and "mpk_" not in text
        assert not (tmp_path / "var" / "demo").exists()
        assert status_of(f"http://127.0.0.1:{srv.port}/api/demo")[0] == 404
        assert "模拟来电" not in page_text(f"http://127.0.0.1:{srv.port}/")
    finally:
        srv.stop()


def page_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode("utf-8"))


def status_of(url: str, key: str = "") -> tuple[int, Any]:
    """A GET's status and JSON body (None when it has none)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), None
