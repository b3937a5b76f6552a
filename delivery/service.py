"""The delivery domain assembled: store, counters, meter, gateways, intake, chains, receipts and
replies, built from a `DeliveryConfig` and torn down in reverse. The server builds one per
process (its config from the settings) and calls into it; nothing here knows HTTP serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from pathlib import Path

import aiohttp

from chatbot.events import InboundEvent
from renderer import TemplateStore
from renderer.video import ffmpeg_exe

from . import keys
from .cardsms import CardSms, CardSmsChannel
from .chain import Chains, Skip
from .compose import Composer
from .config import DeliveryConfig
from .errors import ConfigError
from .events import Events
from .funnel import Funnel
from .gateways import Channel, Outgoing
from .gateways.cardsms_api import Platform
from .gateways.kannel import KannelChannel
from .gateways.rcs import Capabilities, Messaging, RcsChannel
from .gateways.smpp import SmppChannel
from .gateways.smpp_address import Numbering
from .gateways.smpp_pdu import ShortMessage
from .gateways.smpp_pool import SmppPool
from .gateways.smpp_rate import LocalRate, RedisRate, SubmitRate
from .gateways.smpp_receipts import parse_receipt
from .intake import Intake
from .library.fetch import PhotoFetcher
from .library.files import LibraryFiles
from .library.library import MediaLibrary
from .metering import Counters, Meter
from .metering.redis import RedisCounters
from .metering.sqlite import SqliteCounters
from .model import NumberError, normalize_number
from .open_store import open_store
from .receipts import Outcome, Receipts, no_outcome
from .refusals import CardRefusals
from .replies import Replies
from .retention import Retention, days_of
from .revoke import Revoker
from .seed import load_seed
from .shortlinks import CODE_LENGTH, ShortLink, ShortLinks
from .storage import DeliveryStore
from .store import SqliteDeliveryStore
from .wakeups import Wakeups

log = logging.getLogger("mingpian.delivery")


class DeliveryService:
    def __init__(
        self,
        config: DeliveryConfig,
        templates: TemplateStore,
        messaging: Messaging | None,
        on_outcome: Outcome = no_outcome,
    ) -> None:
        """`messaging`: the chatbot runtime, when a MaaP is configured (5G messages); else None.
        `on_outcome(channel, state)`: told each attempt's final state as it is written here (the
        server counts them; see receipts.py)."""
        self.config = config
        self.store: DeliveryStore = open_store(
            config.database_url, config.database, config.synchronous, config.migrate
        )
        if isinstance(self.store, SqliteDeliveryStore) and config.counters != "redis":
            self.counters: Counters = SqliteCounters(self.store)
        elif config.counters == "redis":
            self.counters = RedisCounters(config.redis_url, self.store, wait=config.redis_wait)
        else:  # counters in SQLite cannot be atomic across the processes sharing a database server
            raise ConfigError("a PostgreSQL database needs the Redis counters (delivery_counters=redis)")
        self.meter = Meter(self.store, self.counters)
        self.wakeups = Wakeups(self.counters.forward_wake)
        self.library = MediaLibrary(
            self.store,
            LibraryFiles(config.library_dir or config.database.parent / "library"),
            config.library_limits,
            config.library_quota,
            config.ffmpeg or ffmpeg_exe(),
            config.callback_base,
            PhotoFetcher(config.fetch_timeout, config.library_limits.max_bytes),
        )
        # short links in texts: the configured base, else this server's own /s/ route
        base = config.link_base or (config.callback_base or "http://127.0.0.1").rstrip("/") + "/s/"
        self.links = ShortLinks(self.store, base)
        # displayed and opened, once each, for the funnel report (5G displayed reports: on_status)
        self.funnel = Funnel(self.store)
        # every fact of a delivery once, written with its own write, rolled up per minute, hour
        # and day by every worker's roller (events.py)
        self.events = Events(self.store.db, config.event_retention_days)  # type: ignore[attr-defined]
        # the growing tables' days made ahead and dropped after their retention (retention.py)
        self.retention = Retention(self.store.db, days_of(config))  # type: ignore[attr-defined]
        self.funnel.events = self.events
        self.links.on_first = self._link_opened  # a delivery's link opened first: the funnel's fact
        self.composer = Composer(self.store, templates, self.library, (self.links.prefix, CODE_LENGTH))
        self.receipts = Receipts(self.store, self.meter, self.wakeups, on_outcome)
        self.receipts.events = self.events
        self.replies = Replies(self.store, self.composer, self.wakeups)
        self.replies.events = self.events
        self.channels: dict[str, Channel] = {}
        self.revoker = Revoker(self.store, messaging)
        # the dry run asks it whether a 5G card's media is approved on its carrier
        self.approval = messaging.approval if messaging is not None else None
        # cards a carrier refused after the fact (the chatbot runtime's message listeners tell it)
        self.refusals = CardRefusals(self.store, messaging.carrier if messaging is not None else _no_carrier)
        capability = None
        self.cardsms: CardSms | None = None  # card SMS, once SMPP is there (start)
        self._skips: dict[str, Skip] = {}  # a channel's own reasons to skip a step (card SMS's)
        if messaging is not None:  # 5G messages through the chatbot runtime
            self.channels["rcs"] = RcsChannel(messaging)
            capability = Capabilities(messaging, config.capability_path, ttl=config.capability_ttl)
        self.chains = Chains(
            self.store,
            self.meter,
            self.composer,
            self.receipts,
            self.wakeups,
            self.channels,
            timeouts=config.timeouts,
            ring_timeout=config.ring_timeout,
            capability=capability,
            lease=config.lease,
            revoker=self.revoker,
            platform_sender=config.platform_sender,
            refused=self.refusals.reason,
            links=self.links,
            skips=self._skips,
        )
        self.chains.events = self.events
        self.chains.carrier = messaging.carrier if messaging is not None else None
        self.intake = Intake(self.store, self.counters, self.chains)
        self.smpp: SmppPool | None = None
        self.kannel_token = ""
        self._session: aiohttp.ClientSession | None = None
        self._forwarded: asyncio.Task[None] | None = None
        self._upkeep: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Raises ConfigError, SeedError, or the database's own error when it cannot be reached."""
        c = self.config
        await self.store.start()
        if c.seed:
            await load_seed(self.store, Path(c.seed))
        if c.operator_key:
            await self.store.add_key(keys.hash_key(c.operator_key), None, "operator (settings)")
        if c.smpp:
            host, _, port = c.smpp.rpartition(":")
            host = host or "127.0.0.1"
            rate: SubmitRate = LocalRate(c.smpp_rate)
            if isinstance(self.counters, RedisCounters):  # the account's rate, shared by every process
                key = f"{self.counters.prefix}smpp-rate:{c.smpp_system_id}@{host}:{port}"
                rate = RedisRate(self.counters.pipe, key, c.smpp_rate)
            self.smpp = SmppPool(
                host,
                int(port),
                c.smpp_system_id,
                c.smpp_password,
                self.on_deliver,
                binds=c.smpp_binds,
                window=c.smpp_window,
                rate=rate,
                wait=c.smpp_wait,
            )
            self.smpp.start()
            numbering = Numbering(c.smpp_numbering, c.smpp_service_ton)
            for name in ("ussd", "flash", "sms"):
                self.channels[name] = SmppChannel(name, self.smpp, c.flash_gsm_dcs, numbering)
        if c.kannel_url:  # flash / SMS through Kannel's HTTP sendsms instead of SMPP
            self._session = aiohttp.ClientSession()
            self.kannel_token = c.kannel_token or secrets.token_urlsafe(24)
            for name in c.kannel_channels:
                self.channels[name] = KannelChannel(
                    name,
                    self._session,
                    c.kannel_url,
                    c.kannel_username,
                    c.kannel_password,
                    c.callback_base,
                    self.kannel_token,
                )
        if c.cardsms_url:
            self._card_sms()
        await self.store.durable()
        await self.chains.start()
        self._forwarded = asyncio.get_running_loop().create_task(
            self.counters.fanout(
                lambda mid, stat: self.receipts.accept(mid, stat, forwarded=True), self.wakeups.poke
            )
        )
        self._upkeep = asyncio.get_running_loop().create_task(self._events_upkeep())
        self.events.start()  # this worker's roller: the facts of every worker, whichever is alive

    async def close(self) -> None:
        if self._forwarded is not None:
            self._forwarded.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forwarded
        await self.chains.close()
        if self._upkeep is not None:
            self._upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep
        if self.cardsms is not None:
            await self.cardsms.close()
        await self.receipts.close()
        await self.links.close()  # the opens still queued are written before the store stops
        if self.smpp is not None:
            await self.smpp.close()
        if self._session is not None:
            await self._session.close()
        with contextlib.suppress(Exception):
            await self.counters.close()
        await self.events.close()  # a last roll (what is left stays in the inbox for the others)
        await self.store.stop()

    def _card_sms(self) -> None:
        """The `cardsms` channel: the vendor platform for templates and parse links, our SMSC
        session for the SMS that carries the link (docs/delivery.md, "Card SMS")."""
        c = self.config
        if self.smpp is None:
            raise ConfigError("card SMS (delivery_cardsms_url) needs SMPP (delivery_smpp) for its SMS")
        self._session = self._session or aiohttp.ClientSession()
        platform = Platform(self._session, c.cardsms_url, c.cardsms_app_key, c.cardsms_app_secret)
        self.cardsms = CardSms(
            self.store,
            platform,
            self.composer.templates,
            ttl=c.cardsms_capability_ttl,
            window=c.cardsms_batch_window,
            days=c.cardsms_link_days,
            domain=c.cardsms_link_domain,
            counters=self.counters,
        )
        self.cardsms.displayed = self._card_displayed
        self.cardsms.custom_url = self._card_page
        self.cardsms.publish = self.library.published
        numbering = Numbering(c.smpp_numbering, c.smpp_service_ton)
        self.channels["cardsms"] = CardSmsChannel(self.cardsms, self.smpp, numbering)
        self._skips["cardsms"] = self.cardsms.skip_reason

    async def _card_displayed(
        self, delivery: str, step: int, enterprise: str, at: float, vendor: str
    ) -> None:
        await self.funnel.displayed(delivery, step, "cardsms", enterprise, at, how="cardsms", vendor=vendor)

    async def _events_upkeep(self) -> None:
        """Every growing table's (raw events included) days past their retention dropped, the
        next days' partitions made: now and hourly (retention.py; an outage is one line)."""
        await self.retention.run()

    async def _card_page(self, out: Outgoing, enterprise: str) -> str:
        """Where a person whose phone fails to draw the card lands: the delivery's H5 card page."""
        days = self.config.cardsms_link_days
        link = await self.links.mint(
            enterprise, out.destination, out.delivery, int(out.extra.get("step", 0)), "cardsms", "card", "",
            days * 86400.0,
        )  # fmt: skip
        url = self.links.url(link.code)  # written as in a text: a bare domain when https
        return url if "://" in url else "https://" + url

    async def _link_opened(self, link: ShortLink, at: float) -> None:
        if link.delivery:
            await self.funnel.opened(link.delivery, link.step, link.channel, link.enterprise, at)

    def stats(self) -> dict[str, int]:
        """This process's part, for monitoring (read only): chains running here and taken over
        since start (chain.py), SMPP sessions bound and configured (0 and 0 without SMPP)."""
        smpp = self.smpp.stats() if self.smpp is not None else {"bound": 0, "configured": 0}
        return {**self.chains.stats(), "smpp_bound": smpp["bound"], "smpp_configured": smpp["configured"]}

    async def queue(self) -> tuple[int, int]:
        """The whole store's (every process's): active deliveries, and of those the ones whose
        current attempt waits for a receipt. One query."""
        return await self.store.queue()

    async def on_deliver(self, sm: ShortMessage) -> None:
        """deliver_sm from the SMSC: a receipt, or a mobile-originated reply. The
        deliver_sm_resp goes out after this returns, so what it stored is durable first."""
        r = parse_receipt(sm)
        if r is not None:
            if r.final:
                await self.receipts.accept(r.message_id, r.stat, source=_recipient(sm.source), vendor="smsc")
        else:
            await self.replies.on_reply(sm.source, sm.destination, sm.text(), "sms")
        await self.store.durable()

    async def on_chatbot_event(self, bot: str, event: InboundEvent) -> None:
        """A 5G user's text or tap, heard from the chatbot runtime after its turn committed: an
        opt-out word blocks the enterprises behind that chatbot on every channel, a tap on a
        card's button counts in their reports. Durable before the chatbot answers its webhook."""
        text = event.text if event.kind == "text" else ""
        postback = event.postback if event.kind == "postback" else ""
        await self.replies.on_chatbot(
            event.chatbot, event.user, text, postback, ref=f"chatbot:{bot}:{event.message_id}"
        )
        await self.store.durable()


def _no_carrier(chatbot: str) -> str:
    return ""


def _recipient(source: str) -> str:
    """A receipt's source address as the recipient numbers of deliveries are kept (E.164)."""
    try:
        return normalize_number(source)
    except NumberError:
        return source
