"""Webhook authentication, checked on the raw request before the body is parsed.

Four schemes; each is enabled by configuring its secret. Each route accepts only the schemes
configured for its dialect (`RoutePolicy`; by default CT/CU routes take the CT/CU signature,
GSMA routes a bearer token, China Mobile routes Username/Password, and every route our own
HMAC), so a credential one dialect's platform sends cannot open another dialect's route. Every
comparison is constant-time (`hmac.compare_digest`).

- CT/CU CSP: headers `signature`, `timestamp`, `nonce`; signature = SHA-256 over the sorted,
  concatenated (token, timestamp, nonce). Hex is the likely encoding, base64 is also accepted
  (the CSP interface documents leave the encoding unstated). It does not cover the body.
- China Mobile / Huawei: `Authorization: Username="..",Password=".."`.
- Bearer: `Authorization: Bearer <token>`.
- HMAC: `X-Mingpian-Timestamp: <unix seconds>` and `X-Mingpian-Signature: sha256=<hex>` where the
  MAC is HMAC-SHA256(secret, timestamp + "." + raw body), for gateways we configure ourselves.

Timestamped schemes reject requests outside a replay window, and each CT/CU (timestamp, nonce)
is remembered in the store for that window: a repeat is refused (`nonce_key` here, the store's
`first_nonce`, chatbot/runtime.py). Since the CT/CU signature does not cover the body, this is
what stops a captured header triple from carrying another body. A platform's retry is expected
to sign afresh (new timestamp and nonce); a verbatim resend is refused with 401 like any replay.
A route may also admit only a list of source networks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import AuthError

HMAC_SIGNATURE_HEADER = "X-Mingpian-Signature"
HMAC_TIMESTAMP_HEADER = "X-Mingpian-Timestamp"

_UNESCAPE = re.compile(r"\\(.)")
_CRED = re.compile(r'\s*(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


SCHEMES = ("csp-signature", "username-password", "bearer", "hmac-sha256")
# Each webhook dialect (chatbot/runtime.py `Dialect`) belongs to one platform family.
FAMILY = {
    "csp-notify": "csp",
    "csp-message": "csp",
    "csp-status": "csp",
    "csp-check": "csp",
    "gsma": "gsma",
    "cm-message": "cm",
    "cm-status": "cm",
    "cm-audit": "cm",
}
DEFAULT_SCHEMES = {
    "csp": ("csp-signature", "hmac-sha256"),
    "gsma": ("bearer", "hmac-sha256"),
    "cm": ("username-password", "hmac-sha256"),
}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What one platform family's routes accept: these schemes, from these networks (empty: any)."""

    schemes: tuple[str, ...]
    networks: tuple[Network, ...] = ()

    def admits(self, source: str | None) -> bool:
        if not self.networks:
            return True
        try:
            addr = ipaddress.ip_address((source or "").split("%")[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.networks)


def default_policies() -> dict[str, RoutePolicy]:
    return {family: RoutePolicy(schemes) for family, schemes in DEFAULT_SCHEMES.items()}


@dataclass(frozen=True, slots=True)
class WebhookAuth:
    csp_token: str = ""
    username: str = ""
    password: str = ""
    bearer: str = ""
    hmac_secret: str = ""
    replay_window: float = 300.0
    policies: Mapping[str, RoutePolicy] = field(default_factory=default_policies)

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

    def policy(self, dialect: str) -> RoutePolicy | None:
        return self.policies.get(FAMILY.get(dialect, dialect))

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float | None = None, dialect: str | None = None
    ) -> str:
        """The scheme that verified, or AuthError. `headers` must be case-insensitive. With a
        `dialect`, only the schemes its policy names count (others are as if not sent)."""
        allowed = set(SCHEMES)
        if dialect is not None:
            policy = self.policy(dialect)
            allowed = set(policy.schemes) if policy is not None else set()
        usable = [s for s in self.enabled if s in allowed]
        if not usable:
            which = "" if dialect is None else f" for {FAMILY.get(dialect, dialect)} routes"
            raise AuthError(f"no webhook credentials are configured{which}; refusing all callbacks")
        now = time.time() if now is None else now
        reasons: list[str] = []
        authz = headers.get("Authorization", "")
        if "csp-signature" in usable and "signature" in headers:
            ok, why = self._csp(headers, now)
            if ok:
                return "csp-signature"
            reasons.append(why)
        if "username-password" in usable and authz[:8].lower() == "username":
            if self._username(authz):
                return "username-password"
            reasons.append("Username/Password do not match")
        if "bearer" in usable and authz[:7].lower() == "bearer ":
            if hmac.compare_digest(authz[7:].strip().encode(), self.bearer.encode()):
                return "bearer"
            reasons.append("bearer token does not match")
        if "hmac-sha256" in usable and HMAC_SIGNATURE_HEADER in headers:
            ok, why = self._hmac(headers, body, now)
            if ok:
                return "hmac-sha256"
            reasons.append(why)
        if not reasons:
            raise AuthError("missing credentials; expected one of: " + ", ".join(usable))
        raise AuthError("; ".join(reasons))

    def nonce_key(self, headers: Mapping[str, str], scheme: str) -> str | None:
        """What identifies this signed request for replay refusal: the CT/CU (timestamp, nonce).
        None for the other schemes: HMAC covers the body, so a replay can only repeat the same
        event (deduplicated on its message id), and the static schemes carry no nonce."""
        if scheme == "csp-signature":
            return "csp:" + _digest(headers.get("timestamp", ""), headers.get("nonce", ""))
        return None

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


def _digest(*parts: str) -> str:
    """A fixed-size key however long the headers were (32 hex characters)."""
    return hashlib.sha256("\x1f".join(p.strip() for p in parts).encode()).hexdigest()[:32]


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
