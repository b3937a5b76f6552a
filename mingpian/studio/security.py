"""Response headers that keep the studio safe even if data ever reached the DOM as markup.

The pages render untrusted template data (every field of a card is user- or designer-supplied),
so besides building the DOM with textContent only, the browser is told to run nothing but our own
same-origin scripts and to refuse being framed. (The H5 phone's frame is a document of its own,
`/api/templates/{name}/h5`, with the card page's policy.)
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Referrer-Policy": "no-referrer",  # share links carry user data in the fragment/query
}
STUDIO_PREFIXES = ("/t/", "/static/", "/api/studio/", "/docs/")
STUDIO_EXACT = ("/", "/api/capabilities", "/docs", "/api")


def is_studio_path(path: str) -> bool:
    return (
        path in STUDIO_EXACT
        or path.startswith(STUDIO_PREFIXES)
        or (path.startswith("/api/templates/") and path.endswith("/events"))
    )


page_paths_key = web.AppKey("page_paths", list[Callable[[str], bool]])


def add_pages(app: web.Application, matches: Callable[[str], bool]) -> None:
    """Another feature's browser pages (the console, the reports page) get these headers too,
    from the same response hook: one hook per response, not one per feature."""
    app[page_paths_key].append(matches)


def setup(app: web.Application) -> None:
    pages: list[Callable[[str], bool]] = [is_studio_path]
    app[page_paths_key] = pages

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        path = request.path
        for matches in pages:
            if matches(path):
                for k, v in HEADERS.items():
                    response.headers.setdefault(k, v)
                return

    app.on_response_prepare.append(add_headers)
