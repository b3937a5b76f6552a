"""Prometheus text-format metrics without a client library: counters and histograms.

The server is one asyncio process, so plain dicts are enough (no locks); the exposition format
follows https://prometheus.io/docs/instrumenting/exposition_formats/ (text 0.0.4).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

LabelValues = tuple[str, ...]
DEFAULT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, help_: str, labels: tuple[str, ...]) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self.values: dict[LabelValues, float] = {}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        self.values[values] = self.values.get(values, 0.0) + amount

    def expose(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for lv, v in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.labels, lv)} {v:g}"


class Histogram:
    def __init__(
        self, name: str, help_: str, labels: tuple[str, ...], buckets: tuple[float, ...] = DEFAULT_BUCKETS
    ) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_, labels, buckets
        self.counts: dict[LabelValues, list[int]] = {}
        self.sums: dict[LabelValues, float] = {}

    def observe(self, seconds: float, *values: str) -> None:
        counts = self.counts.get(values)
        if counts is None:
            counts = self.counts[values] = [0] * (len(self.buckets) + 1)
            self.sums[values] = 0.0
        counts[bisect_left(self.buckets, seconds)] += 1
        self.sums[values] += seconds

    def expose(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for lv, counts in sorted(self.counts.items()):
            running = 0
            for bound, c in zip(self.buckets, counts, strict=False):
                running += c
                le = 'le="' + format(bound, "g") + '"'
                yield f"{self.name}_bucket{_labels(self.labels, lv, le)} {running}"
            running += counts[-1]
            inf = 'le="+Inf"'
            yield f"{self.name}_bucket{_labels(self.labels, lv, inf)} {running}"
            yield f"{self.name}_sum{_labels(self.labels, lv)} {self.sums[lv]:.6f}"
            yield f"{self.name}_count{_labels(self.labels, lv)} {running}"


class Metrics:
    """The server's metric families. Features may `register` more."""

    def __init__(self) -> None:
        self.requests = Counter(
            "mingpian_http_requests_total",
            "HTTP requests by route and status.",
            ("method", "route", "status"),
        )
        self.latency = Histogram(
            "mingpian_http_request_duration_seconds", "HTTP request latency by route.", ("method", "route")
        )
        self.render = Histogram(
            "mingpian_render_duration_seconds",
            "Time to render a template (validate, bind, check, serialize).",
            ("template", "format"),
        )
        self.render_errors = Counter(
            "mingpian_render_errors_total",
            "Renders that ended in a user-facing error, by kind.",
            ("template", "kind"),
        )
        self._families: list[Counter | Histogram] = [
            self.requests,
            self.latency,
            self.render,
            self.render_errors,
        ]

    def register(self, family: Counter | Histogram) -> Counter | Histogram:
        self._families.append(family)
        return family

    def expose(self) -> str:
        lines: list[str] = []
        for fam in self._families:
            lines.extend(fam.expose())
        return "\n".join(lines) + "\n"
