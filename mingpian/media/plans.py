"""From a render request (or a kept spec) to the work that makes a media file: its hash, the
worker's `WorkSpec`, and the spec record that can make it again.

The same functions serve both ways, so a file made again from its spec is the same request: the
hash is recomputed from the spec and must equal the file's (a template edited since, a profile
whose limits changed or a new RENDER_VERSION give another hash, and the old file cannot be made
again: answered 404).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from renderer import CardTemplate, CarrierProfile, Message, RenderError, TemplateStore, get_profile
from renderer.image import ImageOptions
from renderer.model import Brand
from renderer.video import VideoOptions

from ..media_work import WorkSpec
from .cache import EXT_BY_FORMAT, MediaCache, media_key, thumb_key
from .specs import SPEC_FORMAT


class Source(Protocol):
    """What a render starts from (api.templates.RenderRequest is one)."""

    template: CardTemplate
    data: dict[str, Any]
    message: Message
    profile: CarrierProfile
    brand: dict[str, Any] | None  # set when the message speaks with another brand than the template's


@dataclass(frozen=True, slots=True)
class Kept:
    """A Source rebuilt from a kept spec."""

    template: CardTemplate
    data: dict[str, Any]
    message: Message
    profile: CarrierProfile
    brand: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    key: str
    fmt: str  # png, jpeg, webp, mp4: the job's format
    spec: WorkSpec  # spec.record: the render spec, without file name, part or digest

    @property
    def video(self) -> bool:
        return self.fmt == "mp4"

    def files(self) -> list[tuple[str, str]]:
        """(hash, ext) of every file this work makes."""
        out = [(self.key, Path(self.spec.out).suffix[1:])]
        if self.spec.thumb_out:
            out.append((thumb_key(self.key), "jpg"))
        return out


class NotReproducible(Exception):
    """A kept spec that no longer makes its file here; the message says why."""


@dataclass(slots=True)
class Planner:
    cache: MediaCache
    assets_dir: Path
    library_dir: Path | None = None  # `media:<id>` pictures (delivery/library/files.py)

    def _work(self, src: Source, kind: str, message: Message, out: Path, **kw: Any) -> WorkSpec:
        return WorkSpec(
            kind=kind,
            message=message,
            template_dir=str(src.template.folder),
            assets_dir=str(self.assets_dir),
            out=str(out),
            data=src.data,
            library_dir=str(self.library_dir) if self.library_dir is not None else None,
            **kw,
        )

    @staticmethod
    def _record(src: Source, render: dict[str, Any]) -> dict[str, Any]:
        out = {
            "spec": SPEC_FORMAT,
            "template": src.template.name,
            "templateVersion": src.template.version,
            "profile": src.profile.name,
            "data": src.data,
            "render": render,
        }
        if src.brand is not None:
            out["brand"] = src.brand
        return out

    @staticmethod
    def _keyed(src: Source, parts: dict[str, Any]) -> dict[str, Any]:
        """Another brand than the template's is part of what the file shows, so of its key."""
        return parts if src.brand is None else {**parts, "brand": src.brand}

    def video(
        self, src: Source, width: int, seconds: float | None, card: int | None = None, aspect: str = "9:16"
    ) -> Plan:
        """The MP4 (and its thumbnail) of the whole message, or of card `card` alone."""
        p = src.profile
        message = src.message
        if card is not None:
            message = replace(message, kind="card", cards=(message.cards[card],), chips=())
        opts = VideoOptions(
            width=width,
            aspect=aspect,  # type: ignore[arg-type]
            seconds=seconds,
            max_bytes=p.video_max_bytes,
            max_seconds=min(10.0, p.video_max_seconds),
        )
        key = media_key(
            self._keyed(
                src,
                {
                    "template": src.template.name,
                    "templateVersion": src.template.version,
                    "data": src.data,
                    "kind": "video",
                    "card": card,
                    "width": width,
                    "aspect": aspect,
                    "seconds": seconds,
                    "maxBytes": p.video_max_bytes,
                    "maxSeconds": opts.max_seconds,
                },
            )
        )
        render = {"format": "mp4", "width": width, "aspect": aspect, "seconds": seconds, "card": card}
        spec = self._work(
            src,
            "video",
            message,
            self.cache.path(key, "mp4"),
            video=opts,
            thumb_out=str(self.cache.path(thumb_key(key), "jpg")),
            record=self._record(src, render),
        )
        return Plan(key, "mp4", spec)

    def image(self, src: Source, fmt: str, view: str, width: int, cards: int, card: int) -> Plan:
        """A picture: the card as a phone shows it (`view=card`; a carousel's card `card`), a
        carousel's first `cards` cards side by side (`view=overview`) or card `card`'s media
        slot (`view=media`)."""
        overview = view == "overview"
        opts = ImageOptions(width=width, fmt=fmt, max_cards=cards, card=card, overview=overview)  # type: ignore[arg-type]
        parts: dict[str, Any] = {
            "template": src.template.name,
            "templateVersion": src.template.version,
            "data": src.data,
            "kind": view,
            "fmt": fmt,
            "width": width,
        }
        parts.update({"cards": cards} if overview else {"card": card})
        key = media_key(self._keyed(src, parts))
        render = {"format": fmt, "view": view, "width": width, "cards": cards, "card": card}
        spec = self._work(
            src,
            "slot" if view == "media" else "card",
            src.message,
            self.cache.path(key, EXT_BY_FORMAT[fmt]),
            image=opts,
            card_index=card,
            record=self._record(src, render),
        )
        return Plan(key, fmt, spec)

    def from_record(self, templates: TemplateStore, record: dict[str, Any], digest: str) -> Plan:
        """The work that makes file `digest` again from its kept spec; NotReproducible when the
        spec no longer makes that file here."""
        if record.get("spec") != SPEC_FORMAT:
            raise NotReproducible("its render spec is of another layout")
        try:
            template = templates.get(str(record["template"]))
            if template.version != record["templateVersion"]:
                raise NotReproducible(f"template {template.name!r} has changed since it was made")
            try:
                profile = get_profile(str(record["profile"]))
            except KeyError:
                raise NotReproducible(f"no carrier profile {record['profile']!r} here") from None
            data = record["data"]
            message = template.render(data)
            brand = record.get("brand")
            if brand is not None:
                message = replace(message, brand=Brand(**brand))
            src = Kept(template, data, message, profile, brand)
            r = record["render"]
            if r["format"] == "mp4":
                plan = self.video(src, int(r["width"]), r["seconds"], r["card"], str(r.get("aspect", "9:16")))
            else:
                plan = self.image(src, r["format"], r["view"], r["width"], r["cards"], r["card"])
        except NotReproducible:
            raise
        except RenderError as exc:
            raise NotReproducible(f"its template no longer renders it: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise NotReproducible(f"its render spec is malformed: {type(exc).__name__}") from None
        if digest not in (h for h, _ in plan.files()):
            raise NotReproducible("the renderer or the profile's limits have changed since it was made")
        return plan
