"""Webhook authentication, checked on the raw request before the body is parsed.

Four schemes; each is enabled by configuring its secret, and a request is accepted when any
enabled scheme verifies (platforms differ in what they send, and one deployment may sit behind
several). Every comparison is constant-time (`hmac.compare_digest`).

- CT/CU CSP: headers `signature`, `timestamp`, `nonce`; signature = SHA-256 over the sorted,
  concatenated (token, timestamp, nonce). Hex is the likely encoding, base64 is also accepted
  (the CSP interface documents leave the encoding unstated).
- China Mobile / Huawei: `Authorization: Username="..",Password=".."`.
- Bearer: `Authorization: Bearer <token>`.
- HMAC: `X-Mingpian-Timestamp: <unix seconds>` and `X-Mingpian-Signature: sha256=<hex>` where the
  MAC is HMAC-SHA256(secret, timestamp + "." + raw body), for gateways we configure ourselves.

Timestamped schemes reject requests outside a replay window. A nonce cache is deliberately not
kept: replaying a captured request can only repeat a delivery, and deliveries are deduplicated on
the platform's message ID in the store, so a replay has no effect (while a nonce cache would turn
a platform's verbatim retry into a 401 and a lost message).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import AuthError

HMAC_SIGNATURE_HEADER = "X-Mingpian-Signature"
HMAC_TIMESTAMP_HEADER = "X-Mingpian-Timestamp"

_UNESCAPE = re.compile(r"\\(.)")
_CRED = re.compile(r'\s*(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    csp_token: str = ""
    username: str = ""
    password: str = ""
    bearer: str = ""
    hmac_secret: str = ""
    replay_window: float = 300.0

    @property
    def enabled(self) -> list[str]:
        out = []
        if self.csp_token:
            out.append("csp-signature")
        if self.username and self.password:
            out.append("username-password")
        if self.bearer:
            out.append("bearer")
        if self.hmac_secret:
            out.append("hmac-sha256")
        return out

    def verify(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> str:
        """The scheme that verified, or AuthError. `headers` must be case-insensitive."""
        if not self.enabled:
            raise AuthError("no webhook credentials are configured; refusing all callbacks")
        now = time.time() if now is None else now
        reasons: list[str] = []
        authz = headers.get("Authorization", "")
        if self.csp_token and "signature" in headers:
            ok, why = self._csp(headers, now)
            if ok:
                return "csp-signature"
            reasons.append(why)
        if self.username and self.password and authz[:8].lower() == "username":
            if self._username(authz):
                return "username-password"
            reasons.append("Username/Password do not match")
        if self.bearer and authz[:7].lower() == "bearer ":
            if hmac.compare_digest(authz[7:].strip().encode(), self.bearer.encode()):
                return "bearer"
            reasons.append("bearer token does not match")
        if self.hmac_secret and HMAC_SIGNATURE_HEADER in headers:
            ok, why = self._hmac(headers, body, now)
            if ok:
                return "hmac-sha256"
            reasons.append(why)
        if not reasons:
            raise AuthError("missing credentials; expected one of: " + ", ".join(self.enabled))
        raise AuthError("; ".join(reasons))

    def _fresh(self, raw: str, now: float) -> str | None:
        try:
            ts = float(raw)
        except ValueError:
            return "timestamp is not a number"
        if ts > 1e11:  # milliseconds, as some platforms send
            ts /= 1000.0
        if abs(now - ts) > self.replay_window:
            return f"timestamp outside the {self.replay_window:.0f} s replay window"
        return None

    def _csp(self, headers: Mapping[str, str], now: float) -> tuple[bool, str]:
        ts, nonce, sig = headers.get("timestamp", ""), headers.get("nonce", ""), headers["signature"]
        if not ts or not nonce:
            return False, "signature needs timestamp and nonce headers"
        stale = self._fresh(ts, now)
        if stale:
            return False, stale
        digest = hashlib.sha256("".join(sorted((self.csp_token, ts, nonce))).encode()).digest()
        sig_b = sig.strip().encode()
        ok = hmac.compare_digest(sig_b.lower(), digest.hex().encode()) | hmac.compare_digest(
            sig_b, base64.b64encode(digest)
        )
        return ok, "" if ok else "signature does not match"

    def _username(self, authz: str) -> bool:
        creds = {k.lower(): _UNESCAPE.sub(r"\1", v) for k, v in _CRED.findall(authz)}
        user = creds.get("username", "").encode()
        pw = creds.get("password", "").encode()
        return hmac.compare_digest(user, self.username.encode()) & hmac.compare_digest(
            pw, self.password.encode()
        )

    def _hmac(self, headers: Mapping[str, str], body: bytes, now: float) -> tuple[bool, str]:
        ts = headers.get(HMAC_TIMESTAMP_HEADER, "")
        if not ts:
            return False, f"{HMAC_SIGNATURE_HEADER} needs {HMAC_TIMESTAMP_HEADER}"
        stale = self._fresh(ts, now)
        if stale:
            return False, stale
        sig = headers[HMAC_SIGNATURE_HEADER].strip()
        if sig.startswith("sha256="):
            sig = sig[7:]
        mac = hmac.new(self.hmac_secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(sig.lower().encode(), mac.encode())
        return ok, "" if ok else "HMAC signature does not match"


# ---- signing helpers (the simulator and tests sign the way platforms do) ----------------------


def csp_signature_headers(token: str, now: float | None = None, nonce: str = "") -> dict[str, str]:
    ts = str(int(time.time() if now is None else now))
    nonce = nonce or hashlib.sha256(f"{ts}{time.perf_counter_ns()}".encode()).hexdigest()[:16]
    sig = hashlib.sha256("".join(sorted((token, ts, nonce))).encode()).hexdigest()
    return {"signature": sig, "timestamp": ts, "nonce": nonce}


def hmac_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if now is None else now))
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {HMAC_TIMESTAMP_HEADER: ts, HMAC_SIGNATURE_HEADER: "sha256=" + mac}


def username_header(username: str, password: str) -> dict[str, str]:
    def q(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"')

    return {"Authorization": f'Username="{q(username)}",Password="{q(password)}"'}
