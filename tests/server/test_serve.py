"""`mingpian serve` as users start it: a real process that says where it listens."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_prints_its_address_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "MINGPIAN_PORT": str(port), "MINGPIAN_DATA_DIR": str(tmp_path / "var")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mingpian", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert f"http://127.0.0.1:{port}" in first
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.load(r)["status"] == "ok"
                break
            except OSError:
                assert time.time() < deadline, "server did not come up"
                time.sleep(0.1)
        assert (tmp_path / "var").is_dir()
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    log_lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r.get("route") == "/healthz" and r.get("status") == 200 for r in log_lines)


def test_serve_reads_its_config_file_and_the_environment_wins(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "mingpian.toml"
    config.write_text(
        f'port = {_free_port()}\ndata_dir = "{tmp_path / "var"}"\nlog_format = "text"\n', "utf-8"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")},
        "MINGPIAN_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mingpian", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline() if proc.stdout else ""
        assert f"http://127.0.0.1:{port}" in first  # MINGPIAN_PORT beats the file's port
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.load(r)["status"] == "ok"
                break
            except OSError:
                assert time.time() < deadline, "server did not come up"
                time.sleep(0.1)
        assert (tmp_path / "var").is_dir()  # data_dir from the file
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = err.splitlines()  # log_format = "text" from the file: "<time> INFO <logger> request k=v…"
    access = [line for line in lines if " INFO mingpian.access request " in line and "path=/healthz" in line]
    assert access, err
    for part in ("method=GET", "status=200", "duration_ms=", "request_id="):
        assert part in access[0], access[0]
    assert not any(line.startswith("{") for line in lines), err


def test_serve_with_a_bad_setting_exits_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "mingpian.toml"
    config.write_text("[delivery_timeouts]\nussd = 5\nfax = 3\n", "utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")},
        "MINGPIAN_CONFIG": str(config),
    }
    out = subprocess.run(
        [sys.executable, "-m", "mingpian", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"{config}: delivery_timeouts = {{'ussd': 5, 'fax': 3}}: unknown channel 'fax'; expected "
        "channel=seconds, comma-separated (channels rcs, ussd, flash, sms, cardsms; seconds > 0)"
    ]


def test_a_busy_port_is_one_line_and_exit_2_and_never_says_listening(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")},
            "MINGPIAN_PORT": str(port),
            "MINGPIAN_DATA_DIR": str(tmp_path / "var"),
        }
        out = subprocess.run(
            [sys.executable, "-m", "mingpian", "serve"], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 2 and "listening" not in out.stdout
        assert out.stderr.splitlines() == [
            f"mingpian serve: 无法监听 127.0.0.1:{port}：端口已被占用（是不是已经有一个服务在运行？）"
            "。换一个端口：mingpian serve --port 8081（或 MINGPIAN_PORT=8081 make run）"
        ]


def test_unreachable_redis_or_database_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again: nothing answers there
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")},
        "MINGPIAN_PORT": str(_free_port()),
        "MINGPIAN_DATA_DIR": str(tmp_path / "var"),
    }
    for extra in (
        {"MINGPIAN_STORE": "redis", "MINGPIAN_REDIS_URL": f"redis://127.0.0.1:{dead}/0"},
        {"MINGPIAN_DATABASE_URL": f"postgresql://u:p@127.0.0.1:{dead}/db"},
    ):
        out = subprocess.run(
            [sys.executable, "-m", "mingpian", "serve"],
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and "listening" not in out.stdout, out
        assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("mingpian serve: "), out.stderr
