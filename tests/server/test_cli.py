"""The `mingpian` command line: render and lint, with file:line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mingpian.settings import markdown_table
from tests.support.templates import write_template


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m mingpian ARGS`; `env`: MINGPIAN_* variables replacing the inherited ones."""
    environ = (
        None
        if env is None
        else {**{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")}, **env}
    )
    return subprocess.run(
        [sys.executable, "-m", "mingpian", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=environ,
        timeout=60,
    )


def test_render_prints_the_payload_for_sample_data() -> None:
    out = run("render", "courier-hangup")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert payload["message"]["generalPurposeCard"]["content"]["title"] == "您的快递派送中"


def test_render_with_data_file_and_stdin(tmp_path: Path) -> None:
    data = {"nickname": "阿强", "motto": "今天也要加油"}
    f = tmp_path / "d.json"
    f.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    out = run("render", "personal-show", "--data", str(f))
    assert out.returncode == 0
    assert "阿强" in out.stdout
    out = run("render", "personal-show", "--data", "-", stdin=json.dumps(data))
    assert out.returncode == 0 and "今天也要加油" in out.stdout


def test_render_reports_data_errors_with_path(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('{"nickname": ""}', "utf-8")
    out = run("render", "personal-show", "--data", str(f))
    assert out.returncode == 1
    assert f"{f}: $.nickname" in out.stderr and f"{f}: $.motto: 「个性签名」必填" in out.stderr
    f.write_text('{"nickname": \n oops}', "utf-8")
    out = run("render", "personal-show", "--data", str(f))
    assert out.returncode != 0 and f"{f}:2:" in out.stderr


def test_lint_passes_on_the_project_templates() -> None:
    out = run("lint")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr == "检查了 11 个模板，没有问题\n"


def test_lint_fails_with_file_line_on_broken_templates(tmp_path: Path) -> None:
    write_template(tmp_path, "good", "card:\n  title: 好\n")
    write_template(tmp_path, "typo", "card:\n  title: ok\n  descripton: x\n")
    write_template(tmp_path, "undef", "card:\n  title: '{{ who }}'\n")
    write_template(tmp_path, "toolong", "card:\n  title: '{{ \"长\" * 300 }}'\n")
    write_template(
        tmp_path,
        "baddata",
        "card:\n  title: '{{ n }}'\n",
        schema={"type": "object", "required": ["n"]},
        sample={"m": 1},
    )
    out = run("--templates", str(tmp_path), "lint")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(f"{tmp_path}/typo/card.yaml:3: E001 " in ln and "descripton" in ln for ln in lines), lines
    assert f"{tmp_path}/undef/card.yaml:2: E001 card.title: 「who」未定义（数据里没有这个值）" in lines
    assert any(
        f"{tmp_path}/toolong/sample.json: E020 $.message.generalPurposeCard.content.title" in ln
        for ln in lines
    ), lines
    assert f"{tmp_path}/baddata/sample.json: E010 $.n: 「n」必填" in lines
    assert not any("/good/" in ln for ln in lines)
    assert out.stderr == "检查了 5 个模板，发现 4 个问题\n"
    only = run("--templates", str(tmp_path), "lint", "good")
    assert only.returncode == 0


def test_settings_command_lists_env_vars() -> None:
    out = run("settings")
    assert out.returncode == 0 and "MINGPIAN_PORT=8080" in out.stdout


def test_settings_command_reads_the_config_file_and_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "mingpian.toml"
    config.write_text('port = 8081\nmaap_app_key = "k-123"\n[delivery_timeouts]\nussd = 8\n', "utf-8")
    out = run("settings", "--config", str(config), env={"MINGPIAN_LOG_LEVEL": "debug"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for line in (
        "MINGPIAN_PORT=8081",
        "MINGPIAN_LOG_LEVEL=DEBUG",
        "MINGPIAN_MAAP_APP_KEY=********",
        "MINGPIAN_DELIVERY_TIMEOUTS=rcs=60,ussd=8,flash=30,sms=120,cardsms=120",
        "MINGPIAN_DELIVERY_KANNEL_CHANNELS=flash,sms",
    ):
        assert line in lines, out.stdout
    assert "k-123" not in out.stdout


def test_settings_markdown_prints_the_docs_table() -> None:
    out = run("settings", "--markdown")
    assert out.returncode == 0 and out.stdout == markdown_table()


def test_bad_settings_stop_every_command_with_one_line(tmp_path: Path) -> None:
    out = run("serve", env={"MINGPIAN_LOG_FORMAT": "jsno"})
    assert (out.returncode, out.stdout, out.stderr) == (
        2,
        "",
        "MINGPIAN_LOG_FORMAT='jsno': expected one of auto, json, text\n",
    )
    out = run("lint", env={"MINGPIAN_TEMPLATES_DIR": "x"})
    assert (out.returncode, out.stderr) == (
        2,
        "MINGPIAN_TEMPLATES_DIR: no such setting; did you mean "
        "MINGPIAN_TEMPLATE_DIR? (`mingpian settings` lists them)\n",
    )
    config = tmp_path / "bad.toml"
    config.write_text("port = 8081\ntemplates = 'x'\n", "utf-8")
    out = run("render", "courier-hangup", "--config", str(config))
    assert (out.returncode, out.stdout, out.stderr) == (
        2,
        "",
        f"{config}: templates: no such setting; did you mean template_dir? (`mingpian settings` lists them)\n",
    )
    out = run("serve", "--port", "70000")
    assert (out.returncode, out.stderr) == (2, "port=70000: expected an integer from 0 to 65535\n")


def test_missing_or_unreadable_files_are_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "my.json"
    out = run("render", "courier-hangup", "--data", str(missing))
    assert (out.returncode, out.stdout, out.stderr) == (2, "", f"{missing}：文件不存在\n")
    out = run("render", "courier-hangup", "--data", str(tmp_path))
    assert (out.returncode, out.stderr) == (2, f"{tmp_path}：这是文件夹，不是文件\n")
    latin = tmp_path / "latin1.json"
    latin.write_bytes(b'{"nickname": "\xe9"}')
    out = run("render", "personal-show", "--data", str(latin))
    assert out.returncode == 2 and out.stderr.startswith(f"{latin}：不是 UTF-8 文本")
    out = run("render", "courier-hangup", "--config", str(tmp_path / "none.toml"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "cannot read config file" in out.stderr
    out = run("render", "courier-hangup", "--to", "sms", "--out", str(tmp_path / "no" / "such" / "x.txt"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "写不进去" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_reader_that_stops_reading_ends_the_command_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mingpian", "settings"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # `| head -1`: read one line, then close the pipe
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert first.startswith(b"MINGPIAN_") and err == ""


def test_binary_output_to_a_terminal_is_refused(tmp_path: Path) -> None:
    import pty

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mingpian", "render", "courier-hangup", "--to", "png"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 2
    assert proc.stderr.decode() == (
        "mingpian render：--to png 输出的是二进制数据，请用 --out 文件 指定写到哪里（或重定向标准输出）\n"
    )
    piped = subprocess.run(
        [sys.executable, "-m", "mingpian", "render", "courier-hangup", "--to", "png"],
        capture_output=True,
        timeout=60,
    )
    assert piped.returncode == 0 and piped.stdout.startswith(b"\x89PNG")  # a pipe is not a terminal
