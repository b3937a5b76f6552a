"""Settings: one table, read from the environment, every row documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from mingpian.settings import PROJECT_ROOT, SETTINGS_HELP, Settings, documented_settings

DOC = (PROJECT_ROOT / "docs" / "settings.md").read_text("utf-8")


@pytest.mark.parametrize("setting", documented_settings(), ids=lambda s: s.name)
def test_every_setting_is_documented(setting: object) -> None:
    name = setting.name  # type: ignore[attr-defined]
    env = setting.env  # type: ignore[attr-defined]
    assert SETTINGS_HELP.get(name), f"{name}: no help text in SETTINGS_HELP"
    assert f"`{env}`" in DOC, f"{env} is missing from docs/settings.md"


def test_environment_overrides_defaults() -> None:
    s = Settings.from_env({"MINGPIAN_PORT": "9001", "MINGPIAN_TEMPLATE_DIR": "/tmp/x",
                           "MINGPIAN_RELOAD_INTERVAL": "1.5", "UNRELATED": "1"})
    assert (s.port, s.template_dir, s.reload_interval) == (9001, Path("/tmp/x"), 1.5)
    assert s.host == "127.0.0.1"
    assert Settings.from_env({}, port=7000).port == 7000


def test_bad_values_name_the_variable() -> None:
    with pytest.raises(SystemExit, match="MINGPIAN_PORT"):
        Settings.from_env({"MINGPIAN_PORT": "eighty"})


def test_base_url_defaults_to_host_and_port() -> None:
    assert Settings(host="0.0.0.0", port=81).base_url == "http://0.0.0.0:81"
    assert Settings(public_base_url="https://cards.example.cn/").base_url == "https://cards.example.cn"


def test_secrets_never_print() -> None:
    s = Settings.from_env({"MINGPIAN_WEBHOOK_PASSWORD": "hunter2", "MINGPIAN_MAAP_APP_KEY": "k-123"})
    assert s.webhook_password == "hunter2"
    assert "hunter2" not in repr(s) and "k-123" not in repr(s)
    assert s.shown("webhook_password") == "********"
    assert s.shown("port") == 8080
