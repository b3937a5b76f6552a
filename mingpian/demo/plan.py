"""Whether this server runs the demo, and the settings it runs with: the simulators' loopback
ports, their accounts and the demo's seed, filled in where the deployment configured nothing."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import yaml

from mingpian.settings import Settings

from .phones import PAGE, seed_doc

# What a deployment configures that a demo must never stand beside: any of them means a real
# carrier, real keys or real data, and the demo stays out (`why_not`).
CONFIGURED = (
    "delivery_operator_key",
    "delivery_smpp",
    "delivery_kannel_url",
    "delivery_cardsms_url",
    "maap_url",
    "delivery_seed",
    "database_url",
)


TEMPLATES = ("courier-hangup", "staff-card")  # what the demo's cards are made of (phones.py)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def why_not(settings: Settings) -> str:
    """Why this server does not run the demo ("" : it does)."""
    if settings.demo == "off":
        return "demo = off"
    if not _loopback(settings.host):
        return f"listening on {settings.host}, not loopback"
    if settings.workers > 1:
        return "more than one worker"
    for name in CONFIGURED:
        if getattr(settings, name):
            return f"{name} is configured"
    missing = [t for t in TEMPLATES if not (settings.template_dir / t).is_dir()]
    if missing:  # a folder of one's own templates: the demo's cards could not be made
        return f"the template folder has no {', '.join(missing)}"
    return ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _secret(path: Path) -> str:
    """A key kept in the data folder, made once: a restart signs in with the same one."""
    if path.is_file():
        text = path.read_text("utf-8").strip()
        if text:
            return text
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "mpk_demo-" + secrets.token_urlsafe(18)
    path.touch(mode=0o600)
    path.write_text(key + "\n", "utf-8")
    return key


@dataclass(frozen=True, slots=True)
class Demo:
    """The demo's accounts and ports: the settings point the server at the simulators, which
    network.py starts with the same accounts."""

    settings: Settings
    operator_key: str
    smpp_port: int
    maap_port: int
    cardsms_port: int
    smpp_password: str
    maap_app_id: str
    maap_app_key: str
    csp_token: str
    cardsms_key: str
    cardsms_secret: str
    callback_secret: str
    once: str  # the one-time sign-in link's code (api.py), new at each start

    @property
    def local_url(self) -> str:
        """Where the simulators call this server back: on loopback, whatever `public_base_url` says."""
        host = self.settings.host
        return (
            f"http://[{host}]:{self.settings.port}" if ":" in host else f"http://{host}:{self.settings.port}"
        )

    @property
    def sign_in_url(self) -> str:
        return f"{self.settings.base_url}/console/demo/{self.once}"

    @property
    def console_url(self) -> str:
        return f"{self.settings.base_url}{PAGE}"

    def banner(self) -> str:
        """What `mingpian serve` prints once listening: how to sign in, in Chinese."""
        return (
            "\n演示模式：没有配置网关和密钥，已在本机启动模拟的运营商网络"
            "（5G 消息平台、短信网关、卡片短信平台）和演示企业「飞鸿速运」。\n"
            f"  一次性登录链接：{self.sign_in_url}\n"
            f"  控制台：{self.console_url}\n"
            f"  运营方密钥：{self.operator_key}  （一次性链接用过后，在控制台用它登录）\n"
            "  登录后进入企业「飞鸿速运」的「模拟来电」，拨一通电话，看名片送到各种手机上。\n"
            '  关闭演示：设置 MINGPIAN_DEMO=off（或在设置文件里写 demo = "off"）。\n'
        )


def plan(settings: Settings) -> Demo | None:
    """The demo for these settings, or None when it must not run (why_not)."""
    if why_not(settings):
        return None
    folder = settings.data_dir / "demo"
    operator_key = _secret(folder / "operator-key")
    seed = folder / "seed.yaml"
    seed.parent.mkdir(parents=True, exist_ok=True)
    seed.write_text(yaml.safe_dump(seed_doc(operator_key), allow_unicode=True), "utf-8")
    smpp, maap, cardsms = _free_port(), _free_port(), _free_port()
    password = secrets.token_hex(4)  # SMPP passwords are at most 8 characters
    app_id, app_key, token = "demo-app", secrets.token_hex(12), secrets.token_hex(12)
    cs_key, cs_secret, cb_secret = "demo-cs", secrets.token_hex(12), secrets.token_hex(12)
    configured = settings.with_(
        delivery_seed=str(seed),
        delivery_smpp=f"127.0.0.1:{smpp}",
        delivery_smpp_password=password,
        maap_url=f"http://127.0.0.1:{maap}",
        maap_app_id=app_id,
        maap_app_key=app_key,
        webhook_csp_token=token,
        delivery_cardsms_url=f"http://127.0.0.1:{cardsms}",
        delivery_cardsms_app_key=cs_key,
        delivery_cardsms_app_secret=cs_secret,
        delivery_cardsms_callback_secret=cb_secret,
    )
    return Demo(
        configured,
        operator_key,
        smpp,
        maap,
        cardsms,
        password,
        app_id,
        app_key,
        token,
        cs_key,
        cs_secret,
        cb_secret,
        secrets.token_urlsafe(16),
    )
