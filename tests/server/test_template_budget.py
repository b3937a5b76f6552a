"""Hostile templates against a real server process: every probe is refused with file:line in
well under a second, nothing answers 500, and /healthz keeps answering fast meanwhile.
`mingpian lint` reports the same probes as file:line lines, without a traceback."""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port, wait_port
from tests.support.templates import write_template

# (name, the card's description, what the render answers). Each description is a block scalar
# whose first line (4 in card.yaml) is the probe.
REFUSED = 422
WORDS = "('x ' * 49999).split()"  # 49,999 one-letter words: within the size limit
MAP_MAX = "{{ " + WORDS + "|map('center', 99999)|map('upper')|map('lower')|map('title')|max|length }}"
PROBES: list[tuple[str, str, int]] = [
    # the probes found by the hardening review, as written there
    ("replace", "{{ ('x'*100000).replace('x','y'*100000)|length }}", REFUSED),
    ("ljust", "{{ 'x'.ljust(10**7) }}", REFUSED),
    ("printf-width", "{{ '%010000000d'|format(1) }}", REFUSED),
    ("format-width", "{{ '{:>10000000}'.format(1) }}", REFUSED),
    ("center-filter", "{{ 'x'|center(10**7) }}", REFUSED),
    ("center-method", "{{ 'x'.center(10**7) }}", REFUSED),
    ("zfill", "{{ '1'.zfill(10**7) }}", REFUSED),
    ("indent", "{{ ('x\\n' * 50000)|indent(100) }}", REFUSED),
    ("expandtabs", "{{ ('\\t' * 1000).expandtabs(10**4) }}", REFUSED),
    ("lipsum", "{{ lipsum(10**4) }}", REFUSED),
    ("join-long-string", "{{ ('x' * 100000)|join(', ') }}", REFUSED),
    (
        "nested-loops",
        "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}"
        "{% endfor %}{% endfor %}{% endfor %}",
        REFUSED,
    ),
    ("bigint", "{{ (10**100)**100 }}", REFUSED),
    # Markup values are text: no more 500s
    ("markup-e", "{{ x|e }}", 200),
    ("markup-safe", "{{ x|safe }}", 200),
    ("markup-tojson", "{{ x|tojson }}", 200),
    # more ways to the same ends
    ("format-nested-width", "{{ '{0:{1}}'.format(1, 10**7) }}", REFUSED),
    ("format-precision", "{{ '{:.100001f}'.format(1.0) }}", REFUSED),
    ("format-repeat", "{{ ('{0}' * 30000).format('x' * 1000) }}", REFUSED),
    ("format-map", "{{ '{a:>10000000}'.format_map({'a': 1}) }}", REFUSED),
    ("printf-star", "{{ '%*d' % (10**7, 1) }}", REFUSED),
    ("printf-repeat", "{{ ('%s' * 1000) % (('x' * 1000,) * 1000) }}", REFUSED),
    ("printf-mapping", "{{ ('%(a)s' * 1000) % {'a': 'x' * 1000} }}", REFUSED),
    ("replace-filter", "{{ ('x' * 100000)|replace('x', 'yy') }}", REFUSED),
    ("concat-doubling", "{{ ('x' * 99999) ~ ('y' * 99999) }}", REFUSED),
    ("plus-doubling", "{{ ('x' * 99999) + ('y' * 99999) }}", REFUSED),
    ("list-repeat", "{{ ['x' * 99999] * 2 }}", REFUSED),
    ("list-from-string", "{{ ('x' * 100000)|list|length }}", REFUSED),
    (
        "namespace-doubling",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s|length }}",
        REFUSED,
    ),
    ("output-loop", "{% for i in range(1000) %}{{ 'x' * 99999 }}{% endfor %}", REFUSED),
    ("macro-fanout", "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}", REFUSED),
    ("recursive-loop", "{% for i in [1, 2] recursive %}{{ loop([1, 2]) }}{% endfor %}", REFUSED),
    ("wordwrap", "{{ ('x' * 100000)|wordwrap(1) }}", REFUSED),
    ("escape-chain", "{{ ('&' * 50000)|e|forceescape|forceescape }}", REFUSED),
    ("translate", "{{ ('x' * 1000).translate({120: 'y' * 1000}) }}", REFUSED),
    ("to-bytes", "{{ (1).to_bytes(10**8, 'big') }}", REFUSED),
    ("batch-fill", "{{ [1]|batch(10**7, 'x')|list }}", REFUSED),
    ("slice-count", "{{ [1]|slice(10**7)|list }}", REFUSED),
    ("urlize-target", "{{ ('a.cn ' * 1000)|urlize(target='x' * 1000) }}", REFUSED),
    ("tojson-indent", "{{ {'a': [1]}|tojson(indent=10**6) }}", REFUSED),
    ("sum-lists", "{{ ([[1] * 1000] * 1000)|sum(start=[]) }}", REFUSED),
    ("int-multiply", "{{ (10**4000) * (10**4000) }}", REFUSED),
    ("striptags-quadratic", "{{ ('<a>' * 33000)|striptags }}", REFUSED),
    ("truncate-assert", "{{ x|truncate(1) }}", REFUSED),
    ("deep-parens", "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", REFUSED),  # the compiler's recursion
    ("deep-ifs", "{% if 1 %}" * 500 + "x" + "{% endif %}" * 500, REFUSED),
    ("int-to-str", "{{ ('9' * 5000)|int }}", 200),  # not a number Jinja can read: its default, 0
    # lazy producers: 49,999 strings of 99,999 characters made one by one, each within the limit
    ("map-max", MAP_MAX, REFUSED),
    ("map-list", "{{ " + WORDS + "|map('center', 99999)|list|length }}", REFUSED),
    ("select-test", "{{ " + WORDS + "|select('in', 'y' * 99999)|list|length }}", REFUSED),
    ("sort-keys", "{{ " + WORDS + "|sort(attribute='" + ".".join(["0"] * 200) + "')|length }}", REFUSED),
]

CARD = "card:\n  title: t\n  description: |\n    {probe}\n"


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probes") / "card_templates"
    for name, probe, _ in PROBES:
        write_template(root, name, CARD.format(probe=probe), sample={"x": "<b>&"})
    write_template(root, "ordinary", CARD.format(probe="您好，{{ x }}"), sample={"x": "<b>&"})
    # the same chain as a card's title: a field of one expression
    write_template(root, "lazy-title", f'card:\n  title: "{MAP_MAX}"\n  description: 您好\n')
    return root


@pytest.fixture(scope="module")
def server(probe_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")},
        "MINGPIAN_PORT": str(port),
        "MINGPIAN_TEMPLATE_DIR": str(probe_dir),
        "MINGPIAN_DATA_DIR": str(tmp_path_factory.mktemp("var")),
        "MINGPIAN_LOG_FORMAT": "text",
    }
    log = tmp_path_factory.mktemp("log") / "server.log"
    with log.open("w") as sink:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, "-m", "mingpian", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=sink
        )
        try:
            wait_port(port, proc)
            yield port
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(20)
    err = log.read_text()
    assert "Traceback" not in err, err[-3000:]


def connect(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    CONNECTIONS.append(conn)
    return conn


CONNECTIONS: list[http.client.HTTPConnection] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while CONNECTIONS:
        CONNECTIONS.pop().close()


def _post(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> tuple[int, Any, float]:
    start = time.monotonic()
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data), time.monotonic() - start


class HealthWatch:
    """/healthz asked over and over from another thread while the probes run."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with closing(http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)) as conn:
            while not self._stop.is_set():
                start = time.monotonic()
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                self.latencies.append(time.monotonic() - start)
                self.statuses.append(resp.status)
                time.sleep(0.002)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98]


def _probe_all(
    conn: http.client.HTTPConnection, port: int, only: str | None = None
) -> tuple[dict[str, tuple[int, Any, float]], float]:
    """Every probe (or the one named `only`) on the rcs and sms formats, three times, with
    /healthz asked meanwhile: the answers and /healthz's p99 in seconds."""
    answers: dict[str, tuple[int, Any, float]] = {}
    names = [only] if only is not None else [name for name, _, _ in PROBES]
    rounds = 3 if only is None else 60  # one template: enough renders for /healthz's p99
    with HealthWatch(port) as health:
        for _round in range(rounds):
            for name in names:
                for fmt in ("rcs", "sms"):
                    path = f"/api/templates/{name}/render?format={fmt}"
                    answers[f"{name}?{fmt}"] = _post(conn, path, {"x": "<b>&"})
    assert len(health.latencies) > 50 and set(health.statuses) == {200}
    return answers, health.p99()


def test_every_probe_is_answered_within_a_second_and_healthz_stays_fast(server: int) -> None:
    conn = connect(server)
    for name, _probe, _ in PROBES:  # load and compile each template first: that is not a probe
        conn.request("GET", f"/api/templates/{name}")
        conn.getresponse().read()
    p99s = []
    for _attempt in range(3):  # on a shared machine one run may catch a scheduling hiccup
        answers, p99 = _probe_all(conn, server)
        statuses = [status for status, _, _ in answers.values()]
        assert all(s < 500 for s in statuses)
        for name, _probe, expected in PROBES:
            for fmt in ("rcs", "sms"):
                status, body, seconds = answers[f"{name}?{fmt}"]
                assert status == expected, (name, fmt, body)
                assert seconds < 1.0, (name, fmt, seconds)
                if expected == REFUSED:
                    assert body["error"] == "template_error", body
                    problem = body["problems"][0]
                    assert problem["file"].endswith(f"{name}/card.yaml"), problem
                    assert problem["line"] == 4, problem
        p99s.append(p99)
        if p99 <= 0.050:
            break
    if min(p99s) > 0.050:
        # A machine busy with other work delays /healthz by itself. Then the probes must not
        # delay it more than as many ordinary renders do, on a machine shown to be that busy.
        _, baseline = _probe_all(conn, server, only="ordinary")
        shown = f"/healthz p99 {[round(p * 1000, 1) for p in p99s]} ms, with ordinary renders {baseline * 1000:.1f} ms"
        assert baseline > 0.025 and min(p99s) <= baseline + 0.025, shown


@pytest.mark.parametrize(("name", "probe", "expected"), PROBES, ids=[p[0] for p in PROBES])
def test_each_probe(server: int, name: str, probe: str, expected: int) -> None:
    status, body, seconds = _post(connect(server), f"/api/templates/{name}/render", {"x": "<b>&"})
    assert (status, seconds < 1.0) == (expected, True), (probe, seconds, body)
    if expected == REFUSED:
        problem = body["problems"][0]
        assert (problem["file"].endswith(f"{name}/card.yaml"), problem["line"]) == (True, 4), problem


def test_the_limit_is_named_in_the_answer(server: int) -> None:
    conn = connect(server)
    cases = {
        "replace": "above the limit of 100,000",
        "nested-loops": "more than 10000 steps",
        "bigint": "4300 digits",
        "format-width": "above the limit of 100000",
        "macro-fanout": "",
    }
    for name, words in cases.items():
        status, body, _ = _post(conn, f"/api/templates/{name}/render", {"x": "y"})
        assert status == 422
        assert words in body["problems"][0]["message"], body


def test_a_lazy_chain_in_a_title_is_refused_at_once(server: int) -> None:
    conn = connect(server)
    for _ in range(3):
        status, body, seconds = _post(conn, "/api/templates/lazy-title/render", {})
        assert (status, body["error"], seconds < 1.0) == (422, "template_error", True), (seconds, body)
        problem = body["problems"][0]
        assert problem["file"].endswith("lazy-title/card.yaml") and problem["line"] == 2, problem
        assert "1,000,000" in problem["message"], problem


def test_markup_fields_render_as_their_text(server: int) -> None:
    conn = connect(server)
    texts = {}
    for name in ("markup-e", "markup-safe", "markup-tojson"):
        status, body, _ = _post(conn, f"/api/templates/{name}/render", {"x": "<b>&"})
        assert status == 200, body
        card = body["messageList"][0]["contentText"]["message"]["generalPurposeCard"]
        texts[name] = card["content"]["description"]
    assert texts == {
        "markup-e": "&lt;b&gt;&amp;",
        "markup-safe": "<b>&",
        "markup-tojson": '"\\u003cb\\u003e\\u0026"',
    }


def test_lint_prints_every_probe_as_file_and_line(probe_dir: Path, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINGPIAN_")},
        "MINGPIAN_TEMPLATE_DIR": str(probe_dir),
        "MINGPIAN_DATA_DIR": str(tmp_path / "var"),
    }
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mingpian", "lint", *[n for n, _, _ in PROBES]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - start < 60
    assert "Traceback" not in done.stderr + done.stdout
    assert done.returncode == 1
    for name, _probe, expected in PROBES:
        lines = [ln for ln in done.stdout.splitlines() if f"/{name}/card.yaml:" in ln]
        if expected == REFUSED:
            assert lines and lines[0].split(f"/{name}/")[1].startswith("card.yaml:4: "), (name, done.stdout)
        else:
            assert not lines, lines
