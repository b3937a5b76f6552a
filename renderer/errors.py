"""Domain errors. Each carries enough location (file:line or JSON path) to be fixed by a human."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: where (a JSON path like `$.items[0].name`, or file:line) and what;
    `code`, when given, is a stable machine name of the rule broken (a JSON Schema keyword such
    as `pattern`), for clients that act on it rather than show the message."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    code: str | None = None
    detail: str | None = None  # the original words of a parser (Jinja, YAML), for developers

    def location(self) -> str:
        if self.file:
            return f"{self.file}:{self.line}" if self.line else self.file
        return self.path

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "message": self.message}
        if self.code:
            out["code"] = self.code
        if self.file:
            out["file"] = self.file
        if self.line:
            out["line"] = self.line
        if self.detail:
            out["detail"] = self.detail
        return out

    def __str__(self) -> str:
        loc = self.location()
        where = f" ({self.path})" if self.file and self.path else ""
        return f"{loc}{where}: {self.message}"


class RenderError(Exception):
    """Base of everything the renderer reports to a user rather than crashing on."""

    kind = "render_error"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f"; … {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        return f"{self.message}: {shown}{more}"

    def to_json(self) -> dict[str, object]:
        return {
            "error": self.kind,
            "message": self.message,
            "problems": [p.to_json() for p in self.problems],
        }


class TemplateNotFound(RenderError):
    kind = "template_not_found"


class DataInvalid(RenderError):
    """The caller's data does not match the template's JSON Schema."""

    kind = "data_invalid"


class TemplateInvalid(RenderError):
    """The template itself is broken (syntax, manifest, runtime error while binding)."""

    kind = "template_error"

    @classmethod
    def at(cls, file: str, line: int, path: str, message: str, detail: str | None = None) -> TemplateInvalid:
        """One problem at file:line, `path` naming the field (e.g. `card.suggestions[1]`);
        `detail`: the parser's own words, when `message` retells them."""
        where = f"{path}: " if path else ""
        return cls(f"{file}:{line}: {where}{message}", [Problem(path, message, file, line, detail=detail)])


class LimitExceeded(RenderError):
    """The rendered card breaks a carrier-profile limit or the GSMA payload schema."""

    kind = "limit_exceeded"
