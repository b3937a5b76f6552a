"""Signatures on the card-SMS platform's wire, both ways.

Requests we make carry `Authorization: HMAC-SHA256 Access=<app key>, Timestamp=<unix s>,
Nonce=<hex>, Signature=<hex>` over the method, path, timestamp, nonce and the body's SHA-256:
the platform's own AK/SK scheme has the same parts (an access key, a signed date, a signature
over the canonical request) in its own spelling; this adapter keeps one spelling, which its
simulator checks.

Callbacks the platform makes carry `X-Signature`, `X-Timestamp` and `X-Nonce`; the signature is
HMAC-SHA256 with the callback secret over `timestamp \\n nonce \\n body`. The vendor's pages say
nothing about signing callbacks, so this follows what the other callbacks we take do (the CT/CU
MaaP's `signature`/`timestamp`/`nonce`, Chuanglan's audit push): the body itself is signed (not
only a token, which a replay would carry too), a timestamp bounds how long a captured callback
is worth anything, and a nonce seen once is refused afterwards.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

SKEW = 300.0  # seconds a callback's timestamp may be off our clock
_AUTH = re.compile(r"(\w+)=([^,\s]+)")


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_signature(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    text = f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{body_hash(body)}"
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def authorization(key: str, secret: str, method: str, path: str, body: bytes) -> str:
    """The `Authorization` header of one request to the platform."""
    ts, nonce = str(int(time.time())), secrets.token_hex(8)
    sig = request_signature(secret, method, path, ts, nonce, body)
    return f"HMAC-SHA256 Access={key}, Timestamp={ts}, Nonce={nonce}, Signature={sig}"


def check_authorization(
    header: str, keys: dict[str, str], method: str, path: str, body: bytes, now: float | None = None
) -> str:
    """The access key of a request whose signature holds ("" : it does not). For the simulator."""
    if not header.startswith("HMAC-SHA256 "):
        return ""
    parts = dict(_AUTH.findall(header))
    key, ts, nonce, sig = (parts.get(k, "") for k in ("Access", "Timestamp", "Nonce", "Signature"))
    secret = keys.get(key)
    if secret is None or not ts.isdigit() or abs((now or time.time()) - int(ts)) > SKEW:
        return ""
    good = request_signature(secret, method, path, ts, nonce, body)
    return key if hmac.compare_digest(good, sig) else ""


def callback_signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}\n{nonce}\n".encode(), hashlib.sha256)
    mac.update(body)
    return mac.hexdigest()


def callback_headers(secret: str, body: bytes, timestamp: float | None = None) -> dict[str, str]:
    """Headers of a signed callback (the simulator's side, and tests forging old ones)."""
    ts = str(int(time.time() if timestamp is None else timestamp))
    nonce = secrets.token_hex(12)
    return {
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": callback_signature(secret, ts, nonce, body),
        "Content-Type": "application/json",
    }


def callback_problem(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> str:
    """Why a callback is not the platform's ("" : it is, pending the nonce's first use):
    `signature` (missing or wrong) or `stale` (timestamp outside SKEW)."""
    ts, nonce, sig = (
        headers.get("X-Timestamp", ""),
        headers.get("X-Nonce", ""),
        headers.get("X-Signature", ""),
    )
    if not secret or not ts or not nonce or not sig or len(nonce) > 64:
        return "signature"
    if not hmac.compare_digest(callback_signature(secret, ts, nonce, body), sig):
        return "signature"
    try:
        at = float(ts)
    except ValueError:
        return "signature"
    if abs((now or time.time()) - at) > SKEW:
        return "stale"
    return ""
