"""What one chatbot deployment is configured with: `ChatbotSettings`, each setting declared once
as a field carrying its row (help, allowed values, parser; infra/settingrow.py), and what they
make: the webhook authentication and the MaaP accounts (`MaapAccount`).

The server offers these rows under their own names (`store`, `maap_*`, `webhook_*`, `outbox_*`,
…), in this order, builds a `ChatbotSettings` back from its values and hands it to
`RuntimeConfig.of` (runtime.py) with what it derives itself (files in its data folder, its media).
`redis_url`, `sqlite_synchronous` and `migrate` are declared here, with the chatbot's store,
and the server passes the same values to delivery.
"""

# setting() returns dataclasses.field(...), which RUF009 does not know of:

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra import jsonio
from infra.migrations import MODES as MIGRATE_MODES
from infra.redisurl import check_url
from infra.settingrow import NETWORKS_ALLOWED, SettingError, names, parse_networks, setting
from renderer.profiles import PROFILES

from .auth import SCHEMES, RoutePolicy, WebhookAuth

# The carrier profile whose media limits a dialect's uploads are fitted to, unless one is named.
MEDIA_PROFILES = {"csp": "china-unicom", "cm": "china-mobile", "gsma": "default"}
SCHEMES_ALLOWED = "comma-separated of " + ", ".join(SCHEMES) + " (empty: the route is closed)"
MAAP_ACCOUNT_KEYS = {
    "chatbots": list,
    "url": str,
    "dialect": str,
    "app_id": str,
    "app_key": str,
    "token_url": str,
    "cm_secret": str,
    "file_server": str,
    "upload_mode": str,
    "profile": str,
}
MAAP_ACCOUNTS_ALLOWED = (
    "a JSON array (or TOML array of tables) of accounts, each with chatbots (a list), url, dialect "
    "(csp, cm or gsma), app_id, app_key and optionally token_url, cm_secret, file_server, "
    "upload_mode, profile; or empty"
)


def parse_webhook_schemes(value: Any) -> tuple[str, ...]:
    """`csp-signature,hmac-sha256` (or a TOML array): the auth schemes one dialect's routes take."""
    found = tuple(n.lower() for n in names(value, SCHEMES_ALLOWED))
    for name in found:
        if name not in SCHEMES:
            raise SettingError(f"unknown scheme {name!r}; expected {SCHEMES_ALLOWED}")
    return found


def parse_redis_url(value: Any) -> str:
    """One Redis server's URL, or a Sentinel URL whose parts are checked here (infra/redisurl.py)."""
    if not isinstance(value, str):
        raise SettingError(f"expected text; got {type(value).__name__}")
    try:
        return check_url(value.strip())
    except ValueError as exc:
        raise SettingError(str(exc)) from None


def parse_maap_accounts(value: Any) -> str:
    """More MaaP accounts, each for the chatbots it names; kept as canonical JSON text."""
    if isinstance(value, str):
        if not value.strip():
            return ""
        try:
            value = json.loads(value)
        except ValueError:
            raise SettingError(f"not JSON; expected {MAAP_ACCOUNTS_ALLOWED}") from None
    if not isinstance(value, list):
        raise SettingError(f"expected {MAAP_ACCOUNTS_ALLOWED}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise SettingError(f"[{i}] is not a table; expected {MAAP_ACCOUNTS_ALLOWED}")
        for key, kind in MAAP_ACCOUNT_KEYS.items():
            if key in item and not isinstance(item[key], kind):
                raise SettingError(f"[{i}].{key} must be {'a list' if kind is list else 'text'}")
        unknown = set(item) - set(MAAP_ACCOUNT_KEYS)
        if unknown:
            raise SettingError(f"[{i}]: unknown key {sorted(unknown)[0]!r}; expected {MAAP_ACCOUNTS_ALLOWED}")
        for key in ("chatbots", "url", "app_id", "app_key"):
            if not item.get(key):
                raise SettingError(f"[{i}].{key} is required")
        if item.get("dialect", "csp") not in ("csp", "cm", "gsma"):
            raise SettingError(f"[{i}].dialect must be csp, cm or gsma")
        if item.get("cm_secret", "password") not in ("password", "token"):
            raise SettingError(f"[{i}].cm_secret must be password or token")
        if item.get("upload_mode", "perm") not in ("perm", "temp"):
            raise SettingError(f"[{i}].upload_mode must be perm or temp")
    return json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""


@dataclass(frozen=True, slots=True)
class MaapAccount:
    """One account on a MaaP's send API."""

    url: str
    app_id: str
    app_key: str
    dialect: str = "csp"  # csp (CT/CU accessToken) | cm (China Mobile XML) | gsma (OAuth2)
    token_url: str = ""
    timeout: float = 5.0
    chatbots: tuple[str, ...] = ()  # the chatbots this account sends for; (): every other one
    cm_secret: str = "password"  # China Mobile Basic credentials: password (A) | token (B)
    file_server: str = ""  # China Mobile fileServerRoot; "": the url
    upload_mode: str = "perm"  # CT/CU uploadMode: perm | temp
    profile: str = "china-unicom"  # carrier profile whose media limits uploads must fit
    host_media: bool = True  # upload local card media to the platform (csp, cm)


@dataclass(frozen=True, slots=True)
class ChatbotSettings:
    """The chatbot's settings, in the order the server lists them."""

    store: str = setting(
        "sqlite",
        "Chatbot state store: `sqlite` (embedded, one process) or `redis` (shared by several processes).",
        choices=("sqlite", "redis"),
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis for the `redis` stores and counters: one server's URL, or `redis+sentinel://` with the "
        "sentinels' addresses and the master's name, so that every pool follows a failover to the "
        "promoted replica (docs/operations.md, Redis).",
        parse=parse_redis_url,
        allowed_doc="redis://[user:password@]host:port/db, rediss://…, unix://path, or "
        "redis+sentinel://[user:password@]host:port,host:port,…/master-name/db[?sentinel_password=…]",
    )
    redis_wait_replicas: int = setting(
        0,
        "Replicas that must have a package's charge, a frequency cap's count and the chatbot's "
        "dedupe and commit before they count as done (Redis `WAIT`, one replica round trip per batch "
        "of writes), so that a failover cannot lose them; fewer within `redis_wait_timeout` is an "
        "outage (503). Run at least one more replica than this. 0: replication is not waited for.",
        minimum=0,
        maximum=16,
    )
    redis_wait_timeout: float = setting(
        0.5,
        "Seconds a durable write waits for `redis_wait_replicas` replicas before it is refused.",
        above=0,
        maximum=10,
    )
    sqlite_synchronous: str = setting(
        "NORMAL",
        "SQLite `synchronous` for the chatbot and delivery "
        "stores: NORMAL survives process crashes, FULL also power loss.",
        choices=("OFF", "NORMAL", "FULL", "EXTRA"),
    )
    migrate: str = setting(
        "auto",
        "Schema migrations of the SQLite databases (delivery, chatbot) at start: `auto` applies "
        "pending ones, `check` refuses to start while one is pending (run `mingpian migrate`), "
        "`off` leaves the schema alone.",
        choices=MIGRATE_MODES,
    )
    maap_url: str = setting("", "Base URL of the MaaP send API; empty: replies wait in the outbox.")
    maap_dialect: str = setting(
        "csp",
        "`csp` (CT/CU accessToken API, JSON), `cm` (China Mobile, OMA XML with Basic credentials) or "
        "`gsma` (OAuth2 client credentials, FNW.11).",
        choices=("csp", "cm", "gsma"),
    )
    maap_app_id: str = setting("", "appId (csp) or OAuth2 client id (gsma).")
    maap_app_key: str = setting("", "appKey (csp) or OAuth2 client secret (gsma).")
    maap_token_url: str = setting(
        "", "OAuth2 token endpoint (gsma dialect).", doc_default="`MAAP_URL/oauth2/token`"
    )
    maap_timeout: float = setting(
        5.0, "Seconds before a MaaP request counts as failed (and is retried).", above=0
    )
    maap_cm_secret: str = setting(
        "password",
        "`cm` dialect: the secret hashed with the Date header into `Authorization: Basic`: "
        "`password` (variant A: SHA256hex of `MAAP_APP_KEY`) or `token` (variant B: `MAAP_APP_KEY` "
        "is the CSP token in base64, decoded).",
        choices=("password", "token"),
    )
    maap_file_server: str = setting(
        "",
        "`cm` dialect: China Mobile's fileServerRoot (uploads go to `…/Content`).",
        doc_default="`MAAP_URL`",
    )
    maap_upload_mode: str = setting(
        "perm",
        "`csp` dialect: `perm` uploads a card's fixed-design files permanent (reviewed by the carrier, "
        "sent once approved) and the rest temporary; `temp` uploads every file temporary.",
        choices=("perm", "temp"),
    )
    maap_approval_wait: float = setting(
        2.0,
        "Seconds the first send of a newly uploaded permanent file waits for the carrier's review "
        "before falling over to the next channel (the file keeps waiting for its decision).",
        minimum=0,
    )
    maap_media: str = setting(
        "upload",
        "`upload`: a card's media served by this server (`/media/…`) is uploaded to the MaaP once "
        "per content hash and the card points at the MaaP's copy (csp, cm); `off`: cards keep our URLs.",
        choices=("upload", "off"),
    )
    maap_media_profile: str = setting(
        "",
        "Carrier profile whose media limits uploads are fitted to (image, video, thumbnail bytes).",
        choices=("", *PROFILES),
        doc_default="by dialect: csp `china-unicom`, cm `china-mobile`, gsma `default`",
    )
    maap_accounts: str = setting(
        "",
        "More MaaP accounts, each sending for the chatbots it names (the `MAAP_*` account sends "
        "for every other chatbot), e.g. a China Mobile chatbot beside a China Unicom one.",
        parse=parse_maap_accounts,
        allowed_doc=MAAP_ACCOUNTS_ALLOWED,
    )
    webhook_csp_token: str = setting("", "Token of the CT/CU `signature`/`timestamp`/`nonce` callback check.")
    webhook_username: str = setting(
        "", "Expected `Authorization: Username=..` on callbacks (China Mobile style)."
    )
    webhook_password: str = setting("", "Expected `Password=..` (with webhook_username).")
    webhook_bearer: str = setting("", "Expected `Authorization: Bearer ..` token on callbacks.")
    webhook_hmac_secret: str = setting(
        "", "Secret of the `X-Mingpian-Signature` HMAC-SHA256 over timestamp + raw body."
    )
    webhook_replay_window: float = setting(
        300.0, "Seconds a signed callback's timestamp may differ from now.", minimum=0
    )
    webhook_app_id: str = setting("", "appId returned in the `notifyPath` URL-check response header.")
    webhook_csp_schemes: tuple[str, ...] = setting(
        ("csp-signature", "hmac-sha256"),
        "Auth schemes the CT/CU routes (`notifyPath`, `messageNotification`, `deliveryNotification`) accept.",
        parse=parse_webhook_schemes,
        allowed_doc=SCHEMES_ALLOWED,
    )
    webhook_gsma_schemes: tuple[str, ...] = setting(
        ("bearer", "hmac-sha256"),
        "Auth schemes the GSMA MaaP route (`events`) accepts.",
        parse=parse_webhook_schemes,
        allowed_doc=SCHEMES_ALLOWED,
    )
    webhook_cm_schemes: tuple[str, ...] = setting(
        ("username-password", "hmac-sha256"),
        "Auth schemes the China Mobile routes accept.",
        parse=parse_webhook_schemes,
        allowed_doc=SCHEMES_ALLOWED,
    )
    webhook_csp_networks: tuple[str, ...] = setting(
        (),
        "Source networks the CT/CU routes accept callbacks from (the peer address, or behind "
        "`trusted_proxies` the client they name); empty: any.",
        parse=parse_networks,
        allowed_doc=NETWORKS_ALLOWED,
    )
    webhook_gsma_networks: tuple[str, ...] = setting(
        (),
        "Source networks the GSMA MaaP route accepts callbacks from; empty: any.",
        parse=parse_networks,
        allowed_doc=NETWORKS_ALLOWED,
    )
    webhook_cm_networks: tuple[str, ...] = setting(
        (),
        "Source networks the China Mobile routes accept callbacks from; empty: any.",
        parse=parse_networks,
        allowed_doc=NETWORKS_ALLOWED,
    )
    dedupe_ttl: float = setting(
        604800.0,
        "Seconds a platform message ID is remembered for deduplication (RBM retries for 7 days).",
        above=0,
    )
    outbox_concurrency: int = setting(
        64, "Replies sent to the MaaP in parallel (one per conversation at a time).", minimum=1
    )
    outbox_backoff: float = setting(
        0.2, "First retry delay (s) after a failed send; doubles with jitter.", minimum=0
    )
    outbox_max_backoff: float = setting(60.0, "Longest delay (s) between retries of one reply.", minimum=0)
    outbox_lease: float = setting(
        30.0, "Seconds a worker holds a conversation's head message before another may resend it.", above=0
    )

    def auth(self) -> WebhookAuth:
        """The webhook credentials, and per platform family the schemes and networks it takes."""

        def policy(schemes: tuple[str, ...], networks: tuple[str, ...]) -> RoutePolicy:
            return RoutePolicy(schemes, tuple(ipaddress.ip_network(n) for n in networks))

        return WebhookAuth(
            self.webhook_csp_token,
            self.webhook_username,
            self.webhook_password,
            self.webhook_bearer,
            self.webhook_hmac_secret,
            self.webhook_replay_window,
            {
                "csp": policy(self.webhook_csp_schemes, self.webhook_csp_networks),
                "gsma": policy(self.webhook_gsma_schemes, self.webhook_gsma_networks),
                "cm": policy(self.webhook_cm_schemes, self.webhook_cm_networks),
            },
        )

    def accounts(self) -> tuple[MaapAccount | None, tuple[MaapAccount, ...]]:
        """The default MaaP account (`maap_*`) and the accounts of `maap_accounts`."""
        host = self.maap_media == "upload"
        main = (
            MaapAccount(
                self.maap_url,
                self.maap_app_id,
                self.maap_app_key,
                self.maap_dialect,
                self.maap_token_url,
                self.maap_timeout,
                cm_secret=self.maap_cm_secret,
                file_server=self.maap_file_server,
                upload_mode=self.maap_upload_mode,
                profile=self.maap_media_profile or MEDIA_PROFILES[self.maap_dialect],
                host_media=host,
            )
            if self.maap_url
            else None
        )
        more = []
        for a in jsonio.loads(self.maap_accounts) if self.maap_accounts else []:
            dialect = a.get("dialect", "csp")
            more.append(
                MaapAccount(
                    a["url"],
                    a["app_id"],
                    a["app_key"],
                    dialect,
                    a.get("token_url", ""),
                    self.maap_timeout,
                    chatbots=tuple(a["chatbots"]),
                    cm_secret=a.get("cm_secret", "password"),
                    file_server=a.get("file_server", ""),
                    upload_mode=a.get("upload_mode", "perm"),
                    profile=a.get("profile") or MEDIA_PROFILES[dialect],
                    host_media=host,
                )
            )
        return main, tuple(more)


DEFAULTS = ChatbotSettings()
