"""Lint: compile every template, render its sample data through every target check.

Output lines are `file:line: message` (template problems) or `file: $.json.path: message`
(sample data / limit problems), the format editors and CI annotate.
"""

from __future__ import annotations

from renderer import CarrierProfile, RenderError, TemplateStore, to_rcs
from renderer.glyphs import glyph_problems
from renderer.legacy import override_problems
from renderer.svgcard import svg_problems


def lint_templates(store: TemplateStore, names: list[str] | None, profile: CarrierProfile) -> list[str]:
    out: list[str] = []
    for name in names or store.names():
        try:
            template = store.get(name)
        except RenderError as exc:
            out.extend(_format(exc, None))
            continue
        sample_file = template.files["sample.json"]
        try:
            message = template.render(template.sample)
            to_rcs(message, profile)
        except RenderError as exc:
            out.extend(_format(exc, sample_file))
            continue
        for problem in override_problems(template, message, profile):  # legacy: text must fit
            out.extend(_format(problem, sample_file))
        for problem in svg_problems(template, message):  # media: a designer card.svg.j2 must render
            out.extend(_format(problem, sample_file))
        for p in glyph_problems(message, template.sample, sample_file):  # pictures: no box glyphs
            out.append(f"{p.file or template.files['card.yaml']}: {p.path}: {p.message}")
    return out


def _format(exc: RenderError, data_file: str | None) -> list[str]:
    if not exc.problems:
        return [exc.message]
    lines = []
    for p in exc.problems:
        if p.file:
            lines.append(f"{p.location()}: {p.path + ': ' if p.path else ''}{p.message}")
        else:
            lines.append(f"{data_file or '?'}: {p.path}: {p.message}")
    return lines
