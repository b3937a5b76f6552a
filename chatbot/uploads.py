"""Uploading one file (and its thumbnail) to a platform that hosts media, in its dialect.

- csp (CT/CU): `POST {url}/bot/v1/{chatbotId}/medias/upload`, multipart parts `file` and
  `thumbnail` (a video's), header `uploadMode: perm|temp`, the send API's token. The answer,
  (perm: reviewed by the carrier before it may be sent; temp: not reviewed, expires soon),
  as digested from the interface V1.0.4, is `{"fileInfo": [{"url", "fileName", "contentType",
  "fileSize", "until"}], "errorCode": 0}`; a top-level `url` is tolerated too. An entry whose
  `type` (or contentType) says thumbnail is the thumbnail's; the others are the file.
- cm (China Mobile): `POST {fileServerRoot}/Content`, multipart parts `File` and `Thumbnail`,
  header `tid` (a transaction id, which the carrier's audit notification names) with the Basic
  credentials and the file-operation headers;
  the answer is the RCS FT-over-HTTP file-info XML (cmxml_out.file_info).
- gsma: the MaaP API's file upload is not described by our sources: cards keep our own URLs.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp

from infra import jsonio

from . import cmxml_out
from .cmxml_out import FileInfo, XmlShapeError, parse_until
from .codes import csp_rule, http_rule
from .errors import BadEvent
from .maap import MaapClient, TokenError

HOSTING_DIALECTS = ("csp", "cm")


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    content_type: str
    lasting: bool = False  # part of a card's fixed design: uploaded permanent, used once approved


class UploadError(Exception):
    """The platform did not take the file; `retryable` says whether trying later may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def _form(names: tuple[str, str], file: LocalFile, thumb: LocalFile | None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, f in ((names[0], file), (names[1], thumb)):
        if f is not None:
            data = io.BytesIO(f.path.read_bytes())  # a file object: aiohttp streams it
            form.add_field(name, data, filename=f.path.name, content_type=f.content_type)
    return form


async def upload(
    client: MaapClient, chatbot: str, file: LocalFile, thumb: LocalFile | None, mode: str = "", tid: str = ""
) -> list[FileInfo]:
    """The platform's entries for the file (kind "file") and its thumbnail; UploadError if not.
    `mode` (CT/CU): perm | temp ("": the account's); `tid` (China Mobile): the transaction id its
    audit notification will name ("": a new one)."""
    if client.dialect == "cm":
        return await _cm(client, chatbot, file, thumb, tid or secrets.token_hex(16))
    if client.dialect == "csp":
        return await _csp(client, chatbot, file, thumb, mode or client.upload_mode)
    raise UploadError(f"the {client.dialect} dialect does not host media", retryable=False)


async def _csp(
    client: MaapClient, chatbot: str, file: LocalFile, thumb: LocalFile | None, mode: str
) -> list[FileInfo]:
    stale: str | None = None
    for _ in range(2):
        try:
            headers, base, token = await client.auth(chatbot, stale)
            url = f"{base}/bot/v1/{quote(chatbot, safe=':@')}/medias/upload"
            headers["uploadMode"] = mode
            async with client.session.post(
                url, data=_form(("file", "thumbnail"), file, thumb), headers=headers, timeout=client.timeout
            ) as resp:
                raw = await resp.read()
        except TokenError as exc:
            raise UploadError(str(exc)) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UploadError(f"upload failed: {type(exc).__name__}: {exc}"[:300]) from None
        try:
            data = jsonio.loads(raw) if raw else {}
        except (jsonio.JSONDecodeError, UnicodeDecodeError):
            data = {}
        data = data if isinstance(data, dict) else {}
        try:
            code = int(data.get("errorCode", 0))
        except (TypeError, ValueError):
            code = 0
        rule = csp_rule(resp.status, code)
        if rule.action == "refresh":
            stale = token
            continue
        if rule.action != "ok":
            raise UploadError(
                f"upload refused: {rule.meaning} (HTTP {resp.status}, errorCode {code})",
                retryable=rule.action in ("retry", "backoff", "wait"),
            )
        return _csp_entries(data, file)
    raise UploadError("upload refused: the access token was refused twice")


def _csp_entries(data: dict[str, object], file: LocalFile) -> list[FileInfo]:
    items = data.get("fileInfo")
    entries = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            continue
        ctype = str(item.get("contentType", ""))
        kind = "thumbnail" if "thumbnail" in (str(item.get("type", "")) + ctype).lower() else "file"
        size = item.get("fileSize", 0)
        entries.append(
            FileInfo(
                kind,
                item["url"],
                parse_until(str(item.get("until", ""))),
                ctype,
                int(size) if isinstance(size, int | str) and str(size).isdigit() else 0,
            )
        )
    if not entries and isinstance(data.get("url"), str):
        entries.append(
            FileInfo("file", str(data["url"]), parse_until(str(data.get("until", ""))), file.content_type)
        )
    if not any(e.kind == "file" for e in entries):
        raise UploadError("the upload answer names no file url", retryable=False)
    return entries


async def _cm(
    client: MaapClient, chatbot: str, file: LocalFile, thumb: LocalFile | None, tid: str
) -> list[FileInfo]:
    try:
        headers, _, _ = await client.auth(chatbot)
        headers |= client.cm_file_headers(chatbot) | {"tid": tid}
        async with client.session.post(
            f"{client.file_server}/Content",
            data=_form(("File", "Thumbnail"), file, thumb),
            headers=headers,
            timeout=client.timeout,
        ) as resp:
            raw = await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise UploadError(f"upload failed: {type(exc).__name__}: {exc}"[:300]) from None
    rule = http_rule(resp.status)
    if rule.action != "ok":
        raise UploadError(
            f"upload refused: {rule.meaning}", retryable=rule.action in ("retry", "backoff", "refresh")
        )
    try:
        entries = cmxml_out.file_info(raw)
    except (BadEvent, XmlShapeError) as exc:
        raise UploadError(f"the file server's answer is not file-info XML: {exc}", retryable=False) from None
    if not any(e.kind == "file" for e in entries):
        raise UploadError("the file server's answer names no file url", retryable=False)
    return entries
