"""What one delivery deployment is configured with: `DeliveryConfig`, each of its settings
declared once, as a field carrying its row (help, allowed values, parser; infra/settingrow.py).

The server offers these rows as its `delivery_*` settings (and `database_url`), with their
environment variables, config keys and docs, and builds a `DeliveryConfig` back from its values.
Fields without a row are what the server derives or shares with other features (the database
file in its data folder, where Kannel reaches it, the media library's limits, …).
"""

# setting() returns dataclasses.field(...), which RUF009 does not know of:
# ruff: noqa: RUF009

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.settingrow import SettingError, setting

from .chain import DEFAULT_TIMEOUTS
from .library.ingest import Limits
from .model import CHANNELS
from .stafflimits import MAX_MEMBERS

KANNEL_CHANNELS = ("flash", "sms")
TIMEOUTS_ALLOWED = "channel=seconds, comma-separated (channels rcs, ussd, flash, sms, cardsms; seconds > 0)"
KANNEL_ALLOWED = "flash, sms or both, comma-separated"
HOST_PORT_ALLOWED = "host:port (port 1 to 65535), or empty"
SENDER_ALLOWED = "a service code (digits, at most 20) or a name (letters and digits, at most 11), or empty"
DATABASE_URL_ALLOWED = "empty, or postgresql://user:password@host:port[,host:port…]/database"
LINK_BASE_ALLOWED = "empty, or an http(s) URL such as https://mp.cn/"


def parse_timeouts(value: Any) -> dict[str, float]:
    """`ussd=5,flash=30` (or a TOML table): channels not named keep their default."""
    pairs: list[tuple[Any, Any]]
    if isinstance(value, str):
        pairs = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, eq, seconds = part.partition("=")
            if not eq:
                raise SettingError(f"{part!r} is not channel=seconds; expected {TIMEOUTS_ALLOWED}")
            pairs.append((name.strip(), seconds.strip()))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise SettingError(f"expected {TIMEOUTS_ALLOWED}")
    out = dict(DEFAULT_TIMEOUTS)
    for name, seconds in pairs:
        if name not in CHANNELS:
            raise SettingError(f"unknown channel {name!r}; expected {TIMEOUTS_ALLOWED}")
        try:
            number = float(seconds) if isinstance(seconds, str | int | float) else math.nan
        except ValueError:
            number = math.nan
        if isinstance(seconds, bool) or not (math.isfinite(number) and number > 0):
            raise SettingError(f"{name}: {seconds!r} is not a number of seconds > 0")
        out[name] = number
    return out


def parse_kannel_channels(value: Any) -> tuple[str, ...]:
    """`flash,sms` (or a TOML array): which legacy channels go through Kannel."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SettingError(f"expected {KANNEL_ALLOWED}")
    found = tuple(dict.fromkeys(i.strip().lower() for i in items if i.strip()))
    for name in found:
        if name not in KANNEL_CHANNELS:
            raise SettingError(f"unknown channel {name!r}; expected {KANNEL_ALLOWED}")
    return found


def parse_host_port(value: Any) -> str:
    """`host:port` or empty; checked here so a typo is not a traceback at start."""
    if not isinstance(value, str):
        raise SettingError(f"expected {HOST_PORT_ALLOWED}")
    if value:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
            raise SettingError(f"expected {HOST_PORT_ALLOWED}")
    return value


def parse_sender(value: Any) -> str:
    """A sender the SMSC can carry: a service code (106…, up to 20 digits), an alphanumeric name
    of at most 11 ASCII characters, or empty; checked here so a typo is not a refused submit."""
    if not isinstance(value, str):
        raise SettingError(f"expected {SENDER_ALLOWED}")
    value = value.strip()
    if value and not (
        (value.isdigit() and len(value) <= 20) or (len(value) <= 11 and value.isascii() and value.isalnum())
    ):
        raise SettingError(f"expected {SENDER_ALLOWED}")
    return value


def parse_database_url(value: Any) -> str:
    """Empty (SQLite files in data_dir) or a PostgreSQL URL."""
    if not isinstance(value, str) or (value and not value.startswith(("postgresql://", "postgres://"))):
        raise SettingError(f"expected {DATABASE_URL_ALLOWED}")
    return value


def parse_link_base(value: Any) -> str:
    """Empty (this server's public URL + `/s/`) or an http(s) URL, ending in `/`."""
    if not isinstance(value, str):
        raise SettingError(f"expected {LINK_BASE_ALLOWED}")
    value = value.strip()
    if not value:
        return ""
    if not value.startswith(("https://", "http://")) or len(value.split("/", 3)[2]) == 0:
        raise SettingError(f"expected {LINK_BASE_ALLOWED}")
    return value if value.endswith("/") else value + "/"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Rows are offered by the server as `delivery_<field>` (unless named whole), in this order."""

    database: Path  # the SQLite file (embedded default)
    database_url: str = setting(
        "",
        "PostgreSQL URL of the delivery domain's system of record, shared by every worker (needs "
        "`delivery_counters=redis`); empty: a SQLite file in `data_dir`, one process. Several "
        "hosts (a primary and its standbys): the one that takes writes, found again after a "
        "failover (docs/operations.md).",
        name="database_url",
        parse=parse_database_url,
        allowed_doc=DATABASE_URL_ALLOWED,
    )
    counters: str = setting(
        "sqlite",
        "Where call-event dedupe, quota consumption and frequency "
        "caps are counted: `sqlite` (one process) or `redis` (`REDIS_URL`; "
        "atomic across server processes).",
        choices=("sqlite", "redis"),
    )
    seed: str = setting(
        "",
        "YAML file of enterprises, lines, staff, cards, packages and keys "
        "loaded at start (docs/delivery.md).",
    )
    operator_key: str = setting("", "The operator's API key (only its SHA-256 hash is kept); empty: none.")
    smpp: str = setting(
        "",
        "`host:port` of the SMSC for USSD, flash SMS and SMS over SMPP 3.4; empty: no SMPP channels.",
        parse=parse_host_port,
        allowed_doc=HOST_PORT_ALLOWED,
    )
    smpp_system_id: str = setting("mingpian", "SMPP `system_id` for `bind_transceiver`.")
    smpp_password: str = setting("", "SMPP password for `bind_transceiver`.")
    smpp_binds: int = setting(
        1,
        "SMPP sessions (`bind_transceiver`) each server process keeps; submits are spread over the "
        "bound ones. The SMSC account must allow at least this × the number of server processes.",
        minimum=1,
    )
    smpp_window: int = setting(
        256, "Submits a session may have outstanding (sent, not yet answered) at once.", minimum=1
    )
    smpp_rate: float = setting(
        0.0,
        "Submits per second for the whole SMSC account, spaced evenly; shared by every server "
        "process through Redis with `delivery_counters=redis`. 0: no limit.",
        minimum=0,
    )
    smpp_wait: float = setting(
        5.0,
        "Longest a submit waits for a bound session, a pause after throttling (0x58, 0x14) or a "
        "rate slot; past it (or the attempt's receipt timeout) the attempt fails, retryable, and "
        "the chain moves on.",
        minimum=0,
    )
    flash_gsm_dcs: int = setting(
        16,
        "`data_coding` of a GSM-7 flash SMS: 16 (0x10), or 240 (0xF0) for SMSCs that want it.",
        choices=(16, 240),
    )
    smpp_numbering: str = setting(
        "national",
        "How the SMSC account numbers subscribers: `national` (11 national digits, TON 2 / NPI 1) "
        "or `international` (digits with the country code, TON 1 / NPI 1).",
        choices=("national", "international"),
    )
    smpp_service_ton: int = setting(
        3,
        "TON of a service-code sender (106…, 95555): 3 (network specific) or 0 (unknown), NPI 0.",
        choices=(3, 0),
    )
    platform_sender: str = setting(
        "",
        "What texts of a line the operator has not verified go out from (the platform's own 106… "
        "code): an unverified line may be anyone's number, so it is never the sender. Empty: "
        "`source_addr` is left empty and the SMSC puts the account's default.",
        parse=parse_sender,
        allowed_doc=SENDER_ALLOWED,
    )
    link_base: str = setting(
        "",
        "Public base of the short links in SMS, flash and USSD texts (the code follows it); a "
        "front server maps it to this server's `/s/{code}`. On an https base the text leaves "
        "`https://` out (`mp.cn/Ab3dE5gH7k`): Chinese SMS apps link a bare domain.",
        parse=parse_link_base,
        allowed_doc=LINK_BASE_ALLOWED,
        doc_default="the server's public URL + `/s/`",
    )
    staff_max: int = setting(
        MAX_MEMBERS,
        "Staff members an enterprise may have; the JSON API and the CSV import refuse more (an "
        "export streams, so this bounds what is stored, not memory). One CSV file holds at most "
        "50,000 rows.",
        minimum=1,
    )
    timeouts: dict[str, float] = setting(
        help="Seconds to wait for a receipt before falling over to the next channel; channels not "
        "named keep their default.",
        factory=lambda: dict(DEFAULT_TIMEOUTS),
        parse=parse_timeouts,
        allowed_doc=TIMEOUTS_ALLOWED,
    )
    lease: float = setting(
        15.0,
        "Seconds a worker holds a delivery chain without renewing its lease; after that (the worker "
        "died) another worker takes the chain over.",
        above=0,
    )
    ring_timeout: float = setting(
        45.0,
        "Seconds after `ringing` a pre-call card may still be sent; after that it is dropped.",
        minimum=0,
    )
    capability_path: str = setting(
        "",
        "MaaP path asked whether a number "
        "is a 5G-message terminal (200 yes, 404 no) before trying `rcs` (uses the chatbot's MaaP "
        "account and credentials); `{chatbot}` and `{contact}` are filled in.",
        doc_default="the dialect's own (docs/chatbot.md, Capability)",
    )
    capability_ttl: float = setting(
        86400.0, "Seconds a number's 5G-message capability stays cached.", minimum=0
    )
    kannel_url: str = setting(
        "", "Base URL of a Kannel smsbox (`…/cgi-bin/sendsms`); empty: no Kannel channel."
    )
    kannel_username: str = setting("", "Kannel sendsms username.")
    kannel_password: str = setting("", "Kannel sendsms password.")
    kannel_channels: tuple[str, ...] = setting(
        ("flash", "sms"),
        "Channels sent through Kannel instead of SMPP.",
        parse=parse_kannel_channels,
        allowed_doc=KANNEL_ALLOWED,
    )
    kannel_token: str = setting(
        "",
        "Secret Kannel presents on `dlr-url` and MO callbacks (`token=`); random per start if empty.",
        doc_default="(generated)",
    )
    cardsms_url: str = setting(
        "",
        "Base URL of the card-SMS platform (Huawei KooMessage's AIM API: templates, capability "
        "checks, parse links); empty: no `cardsms` channel. Needs SMPP (the SMS carrying the link).",
    )
    cardsms_app_key: str = setting("", "The platform account's access key (requests are signed with it).")
    cardsms_app_secret: str = setting("", "The platform account's secret key, signing our requests.")
    cardsms_callback_secret: str = setting(
        "",
        "Secret the platform signs its template-status and send-status callbacks with (HMAC-SHA256 "
        "over timestamp, nonce and body); empty: every callback is refused.",
    )
    cardsms_capability_ttl: float = setting(
        86400.0,
        "Seconds a number's card-SMS capability (per template and the vendors approving it) stays cached.",
        minimum=0,
    )
    cardsms_link_domain: str = setting(
        "", "Domain filed with the platform for parse links (e.g. `km2g.cn`); empty: the platform's default."
    )
    cardsms_link_days: int = setting(
        3, "Days a person's parse link stays valid (`expiration_time`, 1 to 7).", minimum=1, maximum=7
    )
    cardsms_batch_window: float = setting(
        0.05,
        "Seconds concurrent sends' capability checks and parse-link requests are gathered for, "
        "into one platform call per 100 recipients (a full batch goes at once).",
        minimum=0,
        maximum=5,
    )
    event_retention_days: int = setting(
        35,
        "Days the raw delivery events are kept (reports read the rollups, kept for good): a month "
        "of reports plus a few days to look into one delivery or rebuild a rollup.",
        minimum=2,
        maximum=400,
    )
    # How long the records that grow with every call event are kept (delivery/retention.py):
    # PostgreSQL drops a day's partition, SQLite deletes the day in small batches.
    calls_retention_days: int = setting(
        7,
        "Days call events are kept: a repeated event is recognised within 2 days, so a week is margin.",
        minimum=3,
        maximum=400,
    )
    deliveries_retention_days: int = setting(
        90,
        "Days deliveries are kept: what `GET /api/calls/{id}` and the delivery report read, a "
        "quarter for complaints.",
        minimum=2,
        maximum=800,
    )
    attempts_retention_days: int = setting(
        90,
        "Days attempts are kept: read with their delivery (its channels, its outcome), so as long.",
        minimum=2,
        maximum=800,
    )
    message_ids_retention_days: int = setting(
        7,
        "Days the SMSC's message ids are kept: receipts come within the validity period (at most 3 days).",
        minimum=4,
        maximum=400,
    )
    receipts_retention_days: int = setting(
        7,
        "Days delivery receipts are kept: applied to their attempt as they arrive; kept a week "
        "to look into one.",
        minimum=4,
        maximum=400,
    )
    charges_retention_days: int = setting(
        400,
        "Days the metering ledger (one row per charged attempt) is kept: usage reports, invoices "
        "and billing disputes for a year and a month.",
        minimum=32,
        maximum=3700,
    )
    taps_retention_days: int = setting(
        400,
        "Days the taps report's daily counts (one row per card, button and day) are kept.",
        minimum=2,
        maximum=3700,
    )
    # Shared with other features or derived by the server (mingpian/api/delivery/__init__.py):
    synchronous: str = "NORMAL"
    migrate: str = "auto"  # the store's schema migrations at open: auto | check | off
    redis_url: str = ""
    redis_wait: tuple[int, float] = (0, 0.5)  # replicas a charge waits for, and how long (s)
    callback_base: str = ""  # where Kannel reaches this server's dlr-url
    library_dir: Path | None = None  # the media library's files; None: data folder / "library"
    library_quota: int = 200 * 1024**2  # bytes per enterprise
    library_limits: Limits = field(default_factory=Limits)
    ffmpeg: str = ""  # empty: the imageio-ffmpeg wheel's
    fetch_timeout: float = 10.0  # a photo URL fetch, in all
