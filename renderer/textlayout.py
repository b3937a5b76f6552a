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
Explicit newlines in the text are kept as line breaks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .fonts import Face

# Closing punctuation, small kana-like marks and separators that must not start a line.
NO_START = frozenset("，。、．,.：:；;！!？?）)」』】〕〉》〗｝}］]”’\"'…‥—～·・%％‰℃°ー々〻ゝゞヽヾ")
# Opening punctuation that must not end a line.
NO_END = frozenset("（(「『【〔〈《〖｛{［[“‘¥￥$＄#＃")

ELLIPSIS = "…"
_TOKEN = re.compile(
    r"[A-Za-z0-9\u00C0-\u024F_@#%&+\-./:=?~'’]+"  # a Latin word / number / URL run
    r"|[ \t\u00A0\u3000]+"  # spaces (ideographic space included)
    r"|."  # any other single character (CJK, punctuation, emoji)
)


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


def _wrap_paragraph(paragraph: str, face: Face, max_width: float) -> list[str]:
    lines: list[list[str]] = []
    line: list[str] = []
    width = 0.0
    for tok in tokens(paragraph):
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
