"""China Mobile's send side in XML: what we send (outbound messages, revokes, the Basic
credentials) and what its file server answers (RCS FT-over-HTTP file info).

The message is `msg:outboundMessageRequest` in `urn:oma:xml:rest:netapi:messaging:1`:
`address` and `destinationAddress` (the user), `senderAddress` (the chatbot), an
`outboundIMMessage` with `contentType`, `bodyText` (CDATA), `conversationID`, `contributionID`,
`inReplyToContributionID` (a reply), `serviceCapability`, `storeSupported`,
`shortMessageSupported` and `smsBodyText` (the SMS fallback), and `clientCorrelator` = our stable
message id, which the platform deduplicates on and which names the message in a revoke.

A card with a chip list is two parts (botmessage + botsuggestion); the sources show one
`contentType`/`bodyText` pair, so two parts go as `multipart/mixed; boundary="next"` in the
one `bodyText`, each part with its own Content-Type and Content-Length (as RCS carries
multipart bodies). Lines end in LF, not CRLF: an XML parser turns every CRLF into LF, which
would make the lengths wrong on arrival. One part goes as itself.

Basic credentials: `Basic base64(<id>:<SHA256hex(secret + Date)>)`, `Date` being the very header
sent. Two secrets are seen in CSP client code, chosen per account (`maap_cm_secret`):
`password` (variant A: secret = SHA256hex(the password)) and `token` (variant B: secret = the
base64-decoded CSP token).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from infra import jsonio

from .cmxml import _child, _local, _text, parse

NS = "urn:oma:xml:rest:netapi:messaging:1"
FT_NS = "urn:gsma:params:xml:ns:rcs:rcs:fthttp"
BOUNDARY = "next"
MULTIPART = f'multipart/mixed; boundary="{BOUNDARY}"'
XML_TYPE = "application/xml"
SECRET_VARIANTS = ("password", "token")


class XmlShapeError(ValueError):
    """A body that is not the dialect's shape; `path` names the element."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


# -- credentials --------------------------------------------------------------------------------
def secret_of(app_key: str, variant: str) -> bytes:
    """The hashing secret of an account's key: A (`password`) or B (`token`), see above."""
    if variant == "password":
        return hashlib.sha256(app_key.encode()).hexdigest().encode()
    if variant == "token":
        try:
            return base64.b64decode(app_key, validate=True)
        except binascii.Error:
            raise ValueError("maap_cm_secret=token needs the CSP token in base64 as the app key") from None
    raise ValueError(f"China Mobile secret variant must be one of {SECRET_VARIANTS}, not {variant!r}")


def basic_auth(app_id: str, secret: bytes, date: str) -> str:
    digest = hashlib.sha256(secret + date.encode()).hexdigest()
    return "Basic " + base64.b64encode(f"{app_id}:{digest}".encode()).decode()


# -- outbound -----------------------------------------------------------------------------------
def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _part_text(part: dict[str, Any]) -> str:
    content = part["contentText"]
    return content if isinstance(content, str) else jsonio.dumps_str(content)


def body_text(message_list: list[dict[str, Any]]) -> tuple[str, str]:
    """(contentType, bodyText) of a message list: one part as itself, more as multipart/mixed."""
    if len(message_list) == 1:
        return message_list[0]["contentType"], _part_text(message_list[0])
    chunks = []
    for part in message_list:
        text = _part_text(part)
        chunks.append(
            f"--{BOUNDARY}\nContent-Type: {part['contentType']}\n"
            f"Content-Length: {len(text.encode())}\n\n{text}\n"
        )
    return MULTIPART, "".join(chunks) + f"--{BOUNDARY}--"


def outbound(body: dict[str, Any], bot_version: str) -> bytes:
    """The XML of one message (`body` is the CT/CU-shaped send body every dialect starts from)."""
    ctype, text = body_text(body["messageList"])
    users = "".join(f"<address>{escape(u)}</address>" for u in body["destinationAddress"])
    dests = "".join(
        f"<destinationAddress>{escape(u)}</destinationAddress>" for u in body["destinationAddress"]
    )
    reply = (
        f"<inReplyToContributionID>{escape(body['inReplyTo'])}</inReplyToContributionID>"
        if body.get("inReplyTo")
        else ""
    )
    sms = body.get("smsContent", "") if body.get("smsSupported") else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<msg:outboundMessageRequest xmlns:msg="{NS}">'
        f"{users}{dests}<senderAddress>{escape(body['senderAddress'])}</senderAddress>"
        "<outboundIMMessage>"
        f"<contentType>{escape(ctype)}</contentType><bodyText>{_cdata(text)}</bodyText>"
        f"<conversationID>{escape(body['conversationId'])}</conversationID>"
        f"<contributionID>{escape(body['contributionId'])}</contributionID>{reply}"
        "<serviceCapability><capabilityId>ChatbotSA</capabilityId>"
        f"<version>{escape(bot_version)}</version></serviceCapability>"
        "<storeSupported>true</storeSupported>"
        f"<shortMessageSupported>{'true' if sms else 'false'}</shortMessageSupported>"
        + (f"<smsBodyText>{_cdata(sms)}</smsBodyText>" if sms else "")
        + "</outboundIMMessage>"
        f"<clientCorrelator>{escape(body['messageId'])}</clientCorrelator>"
        "</msg:outboundMessageRequest>"
    ).encode()


def revoke(user: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<msg:messageStatusReport xmlns:msg="{NS}"><status>RevokeRequested</status>'
        f"<address>{escape(user)}</address></msg:messageStatusReport>"
    ).encode()


# -- reading them back (the simulator and the tests check our XML with these) ------------------
def _root(raw: bytes, name: str) -> Element:
    root = parse(raw)
    if root.tag != f"{{{NS}}}{name}":
        raise XmlShapeError(f"/{_local(root.tag)}", f"root element must be {name} in {NS}")
    return root


def split_parts(ctype: str, text: str) -> list[dict[str, Any]]:
    """bodyText back into a CT/CU-shaped message list (JSON parts parsed)."""
    if not ctype.startswith("multipart/mixed"):
        return [{"contentType": ctype, "contentText": _json_or_text(ctype, text)}]
    parts = []
    for chunk in text.split(f"--{BOUNDARY}")[1:]:
        if chunk.startswith("--"):
            break
        head, _, content = chunk.replace("\r\n", "\n").strip("\n").partition("\n\n")
        headers = dict(line.split(": ", 1) for line in head.split("\n") if ": " in line)
        part_type = headers.get("Content-Type", "")
        if int(headers.get("Content-Length", "-1")) != len(content.encode()):
            raise XmlShapeError("/bodyText", f"part {part_type!r}: Content-Length does not match")
        parts.append({"contentType": part_type, "contentText": _json_or_text(part_type, content)})
    if not parts:
        raise XmlShapeError("/bodyText", "multipart bodyText has no parts")
    return parts


def _json_or_text(ctype: str, text: str) -> Any:
    if ctype.endswith("+json"):
        try:
            return jsonio.loads(text)
        except jsonio.JSONDecodeError:
            raise XmlShapeError("/bodyText", f"{ctype} part is not JSON") from None
    return text


REQUIRED_IM = (
    "contentType",
    "bodyText",
    "conversationID",
    "contributionID",
    "serviceCapability",
    "storeSupported",
    "shortMessageSupported",
)


def read_outbound(raw: bytes) -> dict[str, Any]:
    """An outboundMessageRequest checked against the shape above, as a CT/CU-shaped dict
    (raises XmlShapeError or BadEvent naming the element)."""
    root = _root(raw, "outboundMessageRequest")
    path = "/outboundMessageRequest"
    for name in ("address", "destinationAddress", "senderAddress", "clientCorrelator"):
        _text(root, name, path)
    im = _child(root, "outboundIMMessage")
    if im is None:
        raise XmlShapeError(f"{path}/outboundIMMessage", "outboundIMMessage is required")
    ipath = f"{path}/outboundIMMessage"
    for name in REQUIRED_IM:
        if _child(im, name) is None:
            raise XmlShapeError(f"{ipath}/{name}", f"{name} is required")
    cap = _child(im, "serviceCapability")
    assert cap is not None
    _text(cap, "capabilityId", f"{ipath}/serviceCapability")
    flags = {}
    for name in ("storeSupported", "shortMessageSupported"):
        value = _text(im, name, ipath)
        if value not in ("true", "false"):
            raise XmlShapeError(f"{ipath}/{name}", f"{name} must be true or false")
        flags[name] = value == "true"
    sms = _text(im, "smsBodyText", ipath, required=False)
    if flags["shortMessageSupported"] and not sms:
        raise XmlShapeError(f"{ipath}/smsBodyText", "shortMessageSupported needs a smsBodyText")
    ctype = _text(im, "contentType", ipath)
    users = [(c.text or "").strip() for c in root if _local(c.tag) == "destinationAddress"]
    out: dict[str, Any] = {
        "messageId": _text(root, "clientCorrelator", path),
        "destinationAddress": users,
        "senderAddress": _text(root, "senderAddress", path),
        "conversationId": _text(im, "conversationID", ipath),
        "contributionId": _text(im, "contributionID", ipath),
        "messageList": split_parts(ctype, _text(im, "bodyText", ipath)),
        "smsSupported": flags["shortMessageSupported"],
        "storeSupported": flags["storeSupported"],
    }
    reply = _text(im, "inReplyToContributionID", ipath, required=False)
    if reply:
        out["inReplyTo"] = reply
    if sms:
        out["smsContent"] = sms
    return out


def read_revoke(raw: bytes) -> tuple[str, str]:
    """(status, address) of a messageStatusReport."""
    root = _root(raw, "messageStatusReport")
    path = "/messageStatusReport"
    return _text(root, "status", path), _text(root, "address", path)


# -- the file server's answer -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FileInfo:
    kind: str  # file | thumbnail
    url: str
    until: float  # Unix time the platform keeps it until; 0: not said
    content_type: str = ""
    size: int = 0


def parse_until(value: str) -> float:
    """An RFC 3339 / ISO 8601 time as Unix seconds; 0 when absent or unreadable."""
    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def file_info(raw: bytes) -> list[FileInfo]:
    root = parse(raw)
    if _local(root.tag) != "file":
        raise XmlShapeError(f"/{_local(root.tag)}", "root element must be file")
    out = []
    for i, info in enumerate(c for c in root if _local(c.tag) == "file-info"):
        data = _child(info, "data")
        if data is None or not data.get("url"):
            raise XmlShapeError(f"/file/file-info[{i}]/data", "data with a url is required")
        size = _child(info, "file-size")
        ctype = _child(info, "content-type")
        out.append(
            FileInfo(
                info.get("type", "file"),
                data.get("url", ""),
                parse_until(data.get("until", "")),
                (ctype.text or "").strip() if ctype is not None else "",
                int((size.text or "0").strip() or 0) if size is not None else 0,
            )
        )
    return out


def file_info_xml(entries: list[FileInfo]) -> bytes:
    """The file server's answer (the simulator plays it)."""
    items = []
    for e in entries:
        until = datetime.fromtimestamp(e.until).astimezone().isoformat() if e.until else ""
        items.append(
            f'<file-info type="{e.kind}"><file-size>{e.size}</file-size>'
            f"<content-type>{escape(e.content_type)}</content-type>"
            f'<data url="{escape(e.url, {chr(34): "&quot;"})}" until="{until}"/></file-info>'
        )
    return (f'<?xml version="1.0" encoding="UTF-8"?><file xmlns="{FT_NS}">{"".join(items)}</file>').encode()
