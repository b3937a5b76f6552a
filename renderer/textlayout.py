"""Line breaking for Chinese card text, measured with the real font.

Rules (after the W3C "Requirements for Chinese Text Layout" and JIS X 4051 kinsoku):
- a line may break between any two CJK characters;
- a run of Latin letters/digits (a word, a number like 29.90, a phone number 400-811-1111, a
  URL) is kept whole when it fits on a line, and broken by character only when it alone is wider
  than the line;
- no line starts with closing punctuation (，。、）」』】！？：；… and friends) and no line ends
  with opening punctuation (（「『【“‘《): the character before is pushed to the next line with it,
  or, when the line holds a single word, the mark hangs past the edge (burasage);
- clamped to `max_lines`, the last line ends with an ellipsis that fits the width.
- a bracketed run holding a number or a time (`【明天09:00-12:00】`, `（SF1234567890）`) or a
  short one (at most 12 characters) is kept whole: moved to the next line when it fits there;
- no last line holding a single character (plus punctuation) when breaking one word earlier
  avoids it, and in paragraphs of up to three lines a last line under a third of the width is
  balanced with the lines above (a narrower measure that keeps the line count).
Explicit newlines in the text are kept as line breaks. Characters are user-perceived clusters
(an emoji ZWJ sequence, a flag, a character with its variation selector is never split).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .fonts import CLUSTER, Face, clusters

# Closing punctuation, small kana-like marks and separators that must not start a line.
NO_START = frozenset("，。、．,.：:；;！!？?）)」』】〕〉》〗｝}］]”’\"'…‥—～·・%％‰℃°ー々〻ゝゞヽヾ")
# Opening punctuation that must not end a line.
NO_END = frozenset("（(「『【〔〈《〖｛{［[“‘¥￥$＄#＃")

ELLIPSIS = "…"
_TOKEN = re.compile(
    r"[A-Za-z0-9\u00C0-\u024F_@#%&+\-./:=?~'’]+"  # a Latin word / number / URL run
    r"|[ \t\u00A0\u3000]+"  # spaces (ideographic space included)
    r"|" + CLUSTER.pattern,  # any other single character (CJK, punctuation, an emoji cluster)
    re.S,
)
# Opening brackets whose whole run may be kept together, and their closers.
BRACKETS = dict(zip("【（(「『《〔〖［[", "】）)」』》〕〗］]", strict=True))
MAX_BRACKET_TOKENS = 24
SHORT_BRACKET = 12  # characters: a bracketed run this short is kept whole even without a number
BALANCE_LINES = 3


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Wrapped lines of one text, and whether the ellipsis cut something off."""

    lines: tuple[str, ...]
    truncated: bool
    line_height: int

    @property
    def height(self) -> int:
        return self.line_height * len(self.lines)


def tokens(paragraph: str) -> list[str]:
    return _TOKEN.findall(paragraph)


def _is_space(tok: str) -> bool:
    return tok.isspace()


def _split_long(tok: str, face: Face, max_width: float) -> list[str]:
    """A single token wider than the line (a long URL) broken into line-sized pieces."""
    pieces: list[str] = []
    cur = ""
    for ch in tok:
        if cur and face.width(cur + ch) > max_width:
            pieces.append(cur)
            cur = ch
        else:
            cur += ch
    if cur:
        pieces.append(cur)
    return pieces


def _greedy(units: list[str], face: Face, max_width: float) -> list[list[str]]:
    """First fit, with kinsoku: each line takes as many units as fit."""
    lines: list[list[str]] = []
    line: list[str] = []
    width = 0.0
    for tok in units:
        if not line and _is_space(tok):
            continue  # no leading spaces on a wrapped line
        w = face.width(tok)
        if width + w <= max_width or (not line and w <= max_width):
            line.append(tok)
            width += w
            continue
        if _is_space(tok):
            lines.append(line)
            line, width = [], 0.0
            continue
        if w > max_width:  # too wide for any line: fill this one, then continue char by char
            pieces = _split_long(tok, face, max_width - width) if width < max_width else []
            if pieces and face.width(pieces[0]) <= max_width - width:
                line.append(pieces[0])
                rest = tok[len(pieces[0]) :]
            else:
                rest = tok
            lines.append(line)
            chunks = _split_long(rest, face, max_width)
            lines.extend([c] for c in chunks[:-1])
            line = [chunks[-1]] if chunks else []
            width = face.width(line[0]) if line else 0.0
            continue
        # Break before `tok`. Kinsoku: pull characters down so the new line does not start
        # with closing punctuation and the old one does not end with opening punctuation.
        carry: list[str] = []
        if tok[0] in NO_START:
            kept = list(line)
            while len(kept) > 1 and (not carry or carry[0][0] in NO_START):
                carry.insert(0, kept.pop())
            if not carry or carry[0][0] in NO_START:
                # Nothing left to pull down (one word filled the line): let the mark hang past
                # the edge, as Chinese typesetting does with 。，、 (burasage).
                line.append(tok)
                width += w
                continue
            line = kept
        if all(t[-1] in NO_END for t in line):
            line.append(tok)  # a line too narrow for "（x": keep the pair together regardless
            width += w
            continue
        while len(line) > 1 and line[-1][-1] in NO_END:
            carry.insert(0, line.pop())
        while line and _is_space(line[-1]):
            line.pop()
        lines.append(line)
        line = [*carry, tok]
        width = sum(face.width(t) for t in line)
    lines.append(line)
    return lines


def _has_digit(toks: list[str]) -> bool:
    return any(ch.isdigit() for t in toks for ch in t)


def _bracket_end(toks: list[str], i: int, face: Face, max_width: float) -> int | None:
    """The index of the token closing the bracketed run opened at `i`, when that run is kept
    whole: it holds a number (a time, a parcel number) or is short, and fits on a line."""
    closer = BRACKETS.get(toks[i])
    if closer is None:
        return None
    for j in range(i + 1, min(len(toks), i + MAX_BRACKET_TOKENS)):
        if toks[j] == closer:
            unit = "".join(toks[i : j + 1])
            short = len(clusters(unit)) - 2 <= SHORT_BRACKET
            fits = face.width(unit) <= max_width
            return j if fits and (short or _has_digit(toks[i + 1 : j])) else None
    return None


def _units(paragraph: str, face: Face, max_width: float) -> list[str]:
    """Tokens, with each bracketed run that stays whole joined into one unit."""
    toks = tokens(paragraph)
    out: list[str] = []
    i = 0
    while i < len(toks):
        j = _bracket_end(toks, i, face, max_width)
        if j is None:
            out.append(toks[i])
            i += 1
        else:
            out.append("".join(toks[i : j + 1]))
            i = j + 1
    return out


def _content(line: list[str]) -> int:
    """Characters on a line that are not punctuation or space (a Latin word counts as one)."""
    n = 0
    for tok in line:
        if _is_space(tok):
            continue
        if _TOKEN.fullmatch(tok) and tok[0].isascii() and len(tok) > 1:
            n += 1  # a Latin word or number
            continue
        n += sum(1 for cl in clusters(tok) if cl[0] not in NO_START and cl[0] not in NO_END)
    return n


def _orphaned(lines: list[list[str]]) -> bool:
    return len(lines) > 1 and _content(lines[-1]) <= 1


def _line_width(line: list[str], face: Face) -> float:
    return sum(face.width(t) for t in line)


def _fix_orphan(lines: list[list[str]], face: Face) -> list[list[str]]:
    """Pull one more word down onto a last line holding a single character: the last two lines
    wrapped again with the one before narrower than it was."""
    pair = lines[-2] + lines[-1]
    narrower = _line_width(lines[-2], face) - 0.5
    for _ in range(3):
        again = _greedy(pair, face, narrower)
        if len(again) != 2 or not again[0]:
            return lines
        if not _orphaned(again):
            return [*lines[:-2], *again]
        narrower = _line_width(again[0], face) - 0.5
    return lines


def _balance(units: list[str], lines: list[list[str]], face: Face, max_width: float) -> list[list[str]]:
    """A short paragraph whose last line is a stub (under a third of the width): the widest
    narrower measure that keeps the line count and gives the last line a third of the width.
    Lines stay as full as they can (not CSS's equal lengths, which leaves a card half empty)."""
    n = len(lines)
    if _line_width(_strip(lines[-1]), face) >= max_width / 3:
        return lines
    step = max(1.0, face.size / 2)
    width = max_width - step
    while width > max_width / 2:
        again = _greedy(units, face, width)
        if len(again) != n:
            break
        if _line_width(_strip(again[-1]), face) >= max_width / 3 and not _orphaned(again):
            return again
        width -= step
    return lines


def _strip(line: list[str]) -> list[str]:
    """A line without its hanging closing marks (burasage) and trailing spaces."""
    out = list(line)
    while out and (_is_space(out[-1]) or (len(out[-1]) == 1 and out[-1] in NO_START)):
        out.pop()
    return out


def _wrap_paragraph(paragraph: str, face: Face, max_width: float) -> list[str]:
    units = _units(paragraph, face, max_width)
    lines = _greedy(units, face, max_width)
    if 1 < len(lines) <= BALANCE_LINES:
        lines = _balance(units, lines, face, max_width)
    if _orphaned(lines):
        lines = _fix_orphan(lines, face)
    return ["".join(toks).rstrip() for toks in lines]


def _with_ellipsis(text: str, face: Face, max_width: float) -> str:
    text = text.rstrip()
    while text and face.width(text + ELLIPSIS) > max_width:
        text = text[:-1]
    text = text.rstrip()
    while text and (text[-1] in NO_END or text[-1] in "，、,;；：:"):
        text = text[:-1]
    return text + ELLIPSIS


def wrap(text: str, face: Face, max_width: float, max_lines: int | None = None) -> TextBlock:
    """Break `text` into lines no wider than `max_width` px (measured with `face`)."""
    out: list[str] = []
    truncated = False
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        out.extend(_wrap_paragraph(paragraph, face, max_width))
        if max_lines is not None and len(out) > max_lines:
            break
    while out and not out[-1]:
        out.pop()  # trailing blank lines (a YAML `|` block ends with one)
    if max_lines is not None and len(out) > max_lines:
        out = out[:max_lines]
        truncated = True
        out[-1] = _with_ellipsis(out[-1], face, max_width)
    return TextBlock(tuple(out), truncated, face.line_height)
