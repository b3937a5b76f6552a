"""Lint: compile every template, render its sample data through every target check.

Each finding prints as `file:line: CODE path: message` (or `file: CODE …` without a line), the
format editors and CI annotate; the file is named as the user reached it (relative to the
current folder when they typed a relative folder), so it opens from there. CODE is stable: a
script keys on it, a person reads the Chinese sentence beside it. `--json` prints the same
findings with English keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatbot.answers import answering_bot, buttons, unanswered_text
from chatbot.flows import FlowStore, flow_problems
from renderer import CarrierProfile, Problem, RenderError, TemplateStore, to_rcs
from renderer.glyphs import glyph_problems
from renderer.legacy import override_problems
from renderer.svgcard import svg_problems

# Stable codes (E: the card or flow is wrong; W: it works but someone will be let down).
CODES: dict[str, str] = {
    "E001": "模板文件有错：语法、清单、数据定义或卡片定义",
    "E002": "找不到模板",
    "E010": "示例数据不符合模板的数据定义",
    "E020": "卡片超出运营商限制",
    "E021": "老手机文本（USSD、闪信、短信）的自定义文本放不下",
    "E030": "卡片图片模板（card.svg.j2）画不出来",
    "E040": "聊天机器人流程有错",
    "E041": "聊天机器人流程回复的模板不存在",
    "W050": "有字符没有字体能画出，图片和视频里会显示成方框",
    "W060": "按钮没有聊天机器人流程回答",
}
_BY_KIND = {
    "template_error": "E001",
    "template_not_found": "E002",
    "data_invalid": "E010",
    "limit_exceeded": "E020",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding: where (file, line, field path), its stable code and a Chinese sentence."""

    code: str
    message: str
    file: str | None = None
    line: int | None = None
    path: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else (self.file or "?")
        field = f"{self.path}: " if self.path else ""
        return f"{where}: {self.code} {field}{self.message}"

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "file": self.file,
            "line": self.line,
            "path": self.path,
            "message": self.message,
        }


def _findings(code: str, exc: RenderError, data_file: str | None) -> list[Finding]:
    if not exc.problems:
        return [Finding(code, exc.message, data_file)]
    return [_finding(code, p, data_file) for p in exc.problems]


def _finding(code: str, p: Problem, data_file: str | None) -> Finding:
    if p.file:
        return Finding(code, p.message, p.file, p.line, p.path)
    return Finding(code, p.message, data_file, None, p.path)


def lint_templates(
    store: TemplateStore,
    names: list[str] | None,
    profile: CarrierProfile,
    flows: FlowStore | None = None,
) -> list[Finding]:
    """Every finding of the named templates (all when None); with `flows` holding any flow, also
    each button no flow answers (a deployment without a chatbot expects no answers)."""
    out: list[Finding] = []
    for name in names or store.names():
        try:
            template = store.get(name)
        except RenderError as exc:
            out.extend(_findings(_BY_KIND.get(exc.kind, "E001"), exc, None))
            continue
        sample_file = template.files["sample.json"]
        try:
            message = template.render(template.sample)
            to_rcs(message, profile)
        except RenderError as exc:
            out.extend(_findings(_BY_KIND.get(exc.kind, "E001"), exc, sample_file))
            continue
        for problem in override_problems(template, message, profile):  # legacy: text must fit
            out.extend(_findings("E021", problem, sample_file))
        for problem in svg_problems(template, message):  # media: a designer card.svg.j2 must render
            out.extend(_findings("E030", problem, sample_file))
        for p in glyph_problems(message, template.sample, sample_file):  # pictures: no box glyphs
            out.append(Finding("W050", p.message, p.file or template.files["card.yaml"], None, p.path))
        if flows is not None and flows.flows:  # every button answered by some flow (when there are bots)
            for field, text, postback in buttons(message):
                if answering_bot(flows, postback) is None:
                    card = template.files["card.yaml"]
                    out.append(Finding("W060", unanswered_text(text, postback), card, None, field))
    return out


def lint_flows(flows: FlowStore, templates: TemplateStore) -> list[Finding]:
    """Flows that do not load, and replies naming templates that do not exist."""
    out: list[Finding] = []
    for missing, p in flow_problems(flows, templates):
        out.append(_finding("E041" if missing else "E040", p, None))
    return out
