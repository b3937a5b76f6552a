"""The project's Markdown docs as HTML, safely.

markdown-it-py (CommonMark plus tables) with raw HTML off: a `<script>` in a doc is shown as
text, never run, and markdown-it's own link check refuses `javascript:` and `data:` URLs. On
top: headings get ids (so `#fragment` links work), a link to another doc (`templates.md`,
`../deploy.md`, `docs/api.md#errors`) points at its page under `/docs/` (the caller says where
each Markdown file is served), and a relative link to anything else (a source file) loses its
link, keeping the words: there is nothing to serve there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

_MD_LINK = re.compile(r"^([A-Za-z0-9_./-]+\.md)(#[^\s]*)?$")
_EXTERNAL = re.compile(r"^(?:https?:|mailto:|#|/)", re.IGNORECASE)
_SLUG_DROP = re.compile(r"[^\w\- ]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    html: str
    headings: tuple[tuple[int, str, str], ...]  # level, text, id


def slug(text: str) -> str:
    """A heading's id, as GitHub spells it: lower case, punctuation dropped, spaces to '-'."""
    return _SLUG_DROP.sub("", text.strip().lower()).replace(" ", "-")


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


# A relative `.md` link (without its fragment) → the page's URL, or None when no page serves it.
DocLinks = Callable[[str], str | None]


def _rewrite_link(href: str, links: DocLinks) -> str | None:
    """Where a doc's link points in the served docs, or None to drop the link."""
    if _EXTERNAL.match(href):
        return href
    if (m := _MD_LINK.match(href)) and (url := links(m.group(1))):
        return url + (m.group(2) or "")
    return None


def _unlink(tokens: list[Token], i: int) -> None:
    """Turn the link opening at tokens[i] (and its closing) into plain text."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j].type == "link_open":
            depth += 1
        elif tokens[j].type == "link_close":
            depth -= 1
            if depth == 0:
                tokens[j] = Token("text", "", 0, content="")
                break
    tokens[i] = Token("text", "", 0, content="")


def render(text: str, links: DocLinks) -> Page:
    """`text` (Markdown) as a page; `links` says where a relative `.md` link is served."""
    md = _parser()
    tokens = md.parse(text)
    headings: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    title = ""
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            words = tokens[i + 1].content
            base = slug(words) or "section"
            n = seen.get(base, 0)
            seen[base] = n + 1
            anchor = base if n == 0 else f"{base}-{n}"
            tok.attrSet("id", anchor)
            level = int(tok.tag[1])
            headings.append((level, words, anchor))
            if level == 1 and not title:
                title = words
        elif tok.type == "inline" and tok.children:
            kids = tok.children
            for j, child in enumerate(kids):
                if child.type == "link_open":
                    href = _rewrite_link(str(child.attrGet("href") or ""), links)
                    if href is None:
                        _unlink(kids, j)
                    else:
                        child.attrSet("href", href)
    html = md.renderer.render(tokens, md.options, {})
    return Page(title, html, tuple(headings))
