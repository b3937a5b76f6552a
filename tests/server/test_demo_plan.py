"""When `mingpian serve` runs the demo (mingpian/demo/plan.py): only on loopback, with one
worker, the shipped templates and nothing configured; never with demo = off."""

from __future__ import annotations

from pathlib import Path

import pytest

from mingpian.demo import plan, why_not
from mingpian.demo.plan import CONFIGURED
from mingpian.settings import Settings


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_a_loopback_server_with_nothing_configured_runs_it(tmp_path: Path, host: str) -> None:
    assert why_not(Settings(host=host, data_dir=tmp_path)) == ""


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"host": "0.0.0.0"}, "listening on 0.0.0.0, not loopback"),
        ({"host": "192.168.1.5"}, "listening on 192.168.1.5, not loopback"),
        ({"demo": "off"}, "demo = off"),
        ({"workers": 2}, "more than one worker"),
        ({"template_dir": Path("/nonexistent")}, "the template folder has no courier-hangup, staff-card"),
    ],
)
def test_what_keeps_it_off(tmp_path: Path, changes: dict[str, object], why: str) -> None:
    assert why_not(Settings(data_dir=tmp_path, **changes)) == why  # type: ignore[arg-type]


@pytest.mark.parametrize("name", CONFIGURED)
def test_anything_a_deployment_configures_keeps_it_off(tmp_path: Path, name: str) -> None:
    value = {
        "delivery_smpp": "127.0.0.1:2775",
        "delivery_kannel_url": "http://127.0.0.1:13013",
        "delivery_cardsms_url": "http://127.0.0.1:9",
        "maap_url": "http://127.0.0.1:9",
        "database_url": "postgresql://u@127.0.0.1/db",
        "delivery_seed": str(tmp_path / "seed.yaml"),
    }.get(name, "mpk_own-operator-key-0123456789")
    settings = Settings(data_dir=tmp_path, **{name: value})
    assert why_not(settings) == f"{name} is configured"
    assert plan(settings) is None and not (tmp_path / "demo").exists()


def test_the_plan_keeps_its_key_and_points_the_settings_at_loopback(tmp_path: Path) -> None:
    first = plan(Settings(data_dir=tmp_path))
    again = plan(Settings(data_dir=tmp_path))
    assert first is not None and again is not None
    assert first.operator_key == again.operator_key and first.operator_key.startswith("mpk_demo-")
    assert (tmp_path / "demo" / "operator-key").stat().st_mode & 0o077 == 0  # the owner's only
    assert first.once != again.once  # the one-time link is new at each start
    s = first.settings
    assert s.delivery_smpp == f"127.0.0.1:{first.smpp_port}"
    assert s.maap_url == f"http://127.0.0.1:{first.maap_port}"
    assert s.delivery_cardsms_url == f"http://127.0.0.1:{first.cardsms_port}"
    assert Path(s.delivery_seed).is_file() and first.operator_key in Path(s.delivery_seed).read_text()
    assert "运营方密钥：" + first.operator_key in first.banner()
