"""A strict little reader of the Prometheus text format (0.0.4) as /metrics writes it: every line
is a comment, a HELP or TYPE line, or a sample of a family whose TYPE came first; histograms are
cumulative and end with +Inf = _count; no series twice. Fails the test on anything else."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(\{{{_LABEL}(?:,{_LABEL})*\}})? (\S+)$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

Labels = frozenset[tuple[str, str]]


@dataclass
class Exposition:
    types: dict[str, str] = field(default_factory=dict)
    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (KeyError if none)."""
        return self.samples[(name, frozenset(labels.items()))]

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), default)

    def series(self, name: str) -> dict[Labels, float]:
        """Every sample of `name`, by its labels."""
        return {lb: v for (n, lb), v in self.samples.items() if n == name}


def _family(name: str, types: dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and types.get(base) == "histogram":
            return base
    return name


def parse(text: str) -> Exposition:
    assert text.endswith("\n"), "the exposition ends with a newline"
    out = Exposition()
    helped: set[str] = set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name) and name not in helped, where
            helped.add(name)
        elif line.startswith("# TYPE "):
            parts = line.split(" ")
            assert len(parts) == 4 and parts[3] in _TYPES and parts[2] not in out.types, where
            out.types[parts[2]] = parts[3]
        elif line.startswith("#"):
            out.comments.append(line)
        else:
            m = _SAMPLE.match(line)
            assert m, where
            name, labels, raw = m.groups()
            assert _family(name, out.types) in out.types, f"{where}: no TYPE before it"
            value = float(raw)  # ValueError on a malformed number
            assert not math.isnan(value), where
            pairs = frozenset(_PAIR.findall(labels or ""))
            key = (name, pairs)
            assert key not in out.samples, f"{where}: the same series twice"
            out.samples[key] = value
    _check_histograms(out)
    return out


def _check_histograms(out: Exposition) -> None:
    for fam, kind in out.types.items():
        if kind != "histogram":
            continue
        groups: dict[Labels, list[tuple[float, float]]] = {}
        for lb, v in out.series(f"{fam}_bucket").items():
            le = dict(lb)["le"]
            rest = frozenset(p for p in lb if p[0] != "le")
            groups.setdefault(rest, []).append((float(le), v))
        for rest, buckets in groups.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{fam}{dict(rest)}: buckets are not cumulative"
            assert buckets[-1][0] == math.inf, f"{fam}{dict(rest)}: no +Inf bucket"
            assert out.samples[(f"{fam}_count", rest)] == counts[-1], f"{fam}{dict(rest)}: _count != +Inf"
            assert (f"{fam}_sum", rest) in out.samples, f"{fam}{dict(rest)}: no _sum"
