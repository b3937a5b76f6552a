"""The media library as the web sees it: the folder, public file URLs, and `media:<id>` values
turned into those URLs in payloads rendered outside any enterprise (the templates API, studio).

`GET /media/library/{id}.{ext}` serves a file to anyone holding its name, like every other
`/media/…` URL a payload carries: phones and MaaP platforms fetch it without a key. The name is
a 128-bit content hash, so it is known only to those who were given it (the enterprise, and the
people its cards reach). The enterprise API (api/delivery/media.py) lists, uploads and deletes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from delivery.library.files import EXTS, LibraryFiles
from renderer.mediarefs import Link, media_id

from .errors import ApiError
from .keys import settings_key
from .openapi import add_paths, error_response
from .settings import Settings

IMMUTABLE = "public, max-age=31536000, immutable"


def library_dir(settings: Settings) -> Path:
    return settings.data_dir / "library"


@dataclass(frozen=True, slots=True)
class LibraryLinks:
    files: LibraryFiles
    base_url: str

    def link(self, path: Path) -> Link:
        return Link(f"{self.base_url}/media/library/{path.name}", EXTS[path.suffix[1:]], path.stat().st_size)

    def links(self, refs: set[str]) -> dict[str, Link]:
        """`media:<id>` → its public URL, for the refs whose file exists."""
        out: dict[str, Link] = {}
        for ref in refs:
            id = media_id(ref)
            path = self.files.find(id) if id else None
            if path is not None:
                out[ref] = self.link(path)
        return out


library_links_key = web.AppKey("library_links", LibraryLinks)


async def get_library_file(request: web.Request) -> web.StreamResponse:
    id, _, ext = request.match_info["name"].partition(".")
    links = request.app[library_links_key]
    try:
        path = links.files.path(id, ext)
    except ValueError:
        raise ApiError(404, "not_found", "no such library file", path="name") from None
    if not path.is_file():
        raise ApiError(404, "not_found", "no such library file", path="name")
    etag = f'"{id}"'
    headers = {"Cache-Control": IMMUTABLE, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("If-None-Match", "").strip() in (etag, "*"):
        return web.Response(status=304, headers=headers)
    resp = web.FileResponse(path, headers={**headers, "Content-Type": EXTS[ext]})
    return resp


def setup(app: web.Application) -> None:
    settings = app[settings_key]
    app[library_links_key] = LibraryLinks(LibraryFiles(library_dir(settings)), settings.base_url)
    app.router.add_get("/media/library/{name}", get_library_file, name="library_file")
    add_paths(app, PATHS)


PATHS = {
    "/media/library/{name}": {
        "get": {
            "summary": "A media library file (`<id>.<ext>`), as phones and MaaP platforms fetch it.",
            "description": "No key: the name is a 128-bit content hash, known to those given it. "
            "Immutable (`Cache-Control: public, max-age=31536000, immutable`); `If-None-Match` gives 304.",
            "operationId": "getLibraryFile",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": {"description": "the file (image/jpeg, image/png or video/mp4)"},
                "304": {"description": "not modified"},
                "404": error_response("no such library file"),
            },
        }
    }
}
