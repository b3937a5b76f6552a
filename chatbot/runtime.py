"""The chatbot runtime: every part of one chatbot deployment, built in one place.

A runtime owns the state store, the MaaP client of its MaaP account (one per account: CT/CU
issue one accessToken per appId and a new one cancels the old, so every sender in the process
shares this client's token cache, and with the Redis store every process shares one token),
the outbox worker that drains replies through that client, the engine and the webhook
authentication. It has two doors:

- `inbound(dialect, bot, headers, raw body, path params)` → `Ack`: a platform's callback,
  authenticated on the raw body, parsed for its dialect, handled exactly once, heard by the
  listeners, acknowledged with the body the platform expects;
- `send(body)`: a message to the MaaP through the same client (delivery's 5G channel), its
  local media first uploaded to the platform when the platform hosts media (hosting.py), and
  never sent while it names a file the carrier has not approved (approval.py);
- `decide`: the carrier's review decisions (`/check`, China Mobile's audit notification) applied
  to the hosted records and the chatbot's information, from any worker;
- `submit_information` / `information`: the chatbot's description and menu sent to its platform,
  in use once the carrier passed them (botinfo.py, infoupdate.py);
- `revoke` and `capability`: taking back a message, asking whether a number takes 5G messages.

Each MaaP account speaks one dialect (csp, cm, gsma: maap.py) and serves the chatbots it names
(none named: every chatbot no other account names), so a China Mobile chatbot's replies go out
as China Mobile XML while a China Unicom one's go out as CT/CU JSON from the same runtime.

The server builds one runtime for the real bots, the studio a private one against the MaaP
simulator; both call the same doors. A tap's path: webhook → `inbound` → engine (turn, commit)
→ outbox worker → `MaapClient.send`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from infra import jsonio
from infra.outage import Unavailable, unavailable
from renderer import TemplateStore
from renderer.profiles import PROFILES

from . import approval, botinfo, cmxml, infoupdate
from . import capability as capabilities
from .approval import Decision, NotApproved
from .auth import WebhookAuth
from .engine import Engine
from .errors import AuthError, MalformedBody, SourceRefused, UnknownBot
from .events import InboundEvent, StatusReport, from_csp_message, from_csp_status, from_gsma
from .fit import Limits, Unfit
from .flows import FlowStore
from .hosting import MediaHost, Resolver
from .maap import MaapClient, SendResult
from .outbox import OutboxWorker
from .settings import DEFAULTS, ChatbotSettings, MaapAccount
from .store import CommitResult, Store, open_store
from .turns import Outbound
from .uploads import HOSTING_DIALECTS, LocalFile, UploadError

log = logging.getLogger("mingpian.chatbot")

Dialect = Literal[
    "csp-notify", "csp-message", "csp-status", "csp-check", "gsma", "cm-message", "cm-status", "cm-audit"
]
# Another feature (delivery) hears each user text or tap after its turn committed (a repeat
# too): (bot folder, event). A listener must be idempotent per event.message_id.
Listener = Callable[[str, InboundEvent], Awaitable[None]]
# Another feature hears the platform's status reports after they are recorded (revoke results
# of delivery's cards); it must be idempotent per report.
StatusListener = Callable[[list[StatusReport]], Awaitable[None]]
# Another feature hears the carrier's verdicts on messages already sent (a `/check` of type
# message, or a status report refusing the content: approval.from_report); idempotent per decision.
MessageListener = Callable[[Decision], Awaitable[None]]
Headers = Mapping[str, str]
Params = Mapping[str, str]
# A dialect's door: (runtime, bot folder, chatbot id, headers, raw body, path params) → its Ack.
Door = Callable[[Any, str, str, Headers, bytes, Params], Awaitable["Ack"]]


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """What a runtime is built from. The server's comes from its settings (`of`); the studio's
    preview bot and the tests build theirs directly. Defaults are the settings' own."""

    auth: WebhookAuth
    store: str = DEFAULTS.store  # sqlite | redis
    sqlite_path: Path | None = None
    sqlite_synchronous: str = DEFAULTS.sqlite_synchronous
    redis_url: str = ""
    dedupe_ttl: float = DEFAULTS.dedupe_ttl
    keep_sent: float = 7 * 86400.0
    app_id: str = ""  # returned in the CT/CU notifyPath check
    maap: MaapAccount | None = None
    accounts: tuple[MaapAccount, ...] = ()  # more accounts, each for the chatbots it names
    media: Resolver | None = None  # our media URL → local file (the server knows its /media/)
    media_dir: Path | None = None  # where fitted uploads are kept
    outbox_concurrency: int = DEFAULTS.outbox_concurrency
    outbox_lease: float = DEFAULTS.outbox_lease
    outbox_backoff: float = DEFAULTS.outbox_backoff
    outbox_max_backoff: float = DEFAULTS.outbox_max_backoff
    outbox_poll: float = 0.05
    migrate: str = DEFAULTS.migrate  # the SQLite store's schema migrations at start: auto | check | off
    approval_wait: float = DEFAULTS.maap_approval_wait  # a new permanent file's first send waits this long
    redis_wait: tuple[int, float] = (0, 0.5)  # replicas a commit waits for, and how long (s)

    @classmethod
    def of(
        cls,
        s: ChatbotSettings,
        sqlite_path: Path,
        media: Resolver | None = None,
        media_dir: Path | None = None,
    ) -> RuntimeConfig:
        """A deployment's config from its settings; the rest is where the deployment keeps its
        files (`sqlite_path`, `media_dir`) and how it finds its own media URLs' files."""
        maap, more = s.accounts()
        return cls(
            s.auth(),
            s.store,
            sqlite_path,
            s.sqlite_synchronous,
            s.redis_url,
            s.dedupe_ttl,
            redis_wait=(s.redis_wait_replicas, s.redis_wait_timeout),
            app_id=s.webhook_app_id,
            maap=maap,
            accounts=more,
            media=media,
            media_dir=media_dir,
            outbox_concurrency=s.outbox_concurrency,
            outbox_lease=s.outbox_lease,
            outbox_backoff=s.outbox_backoff,
            outbox_max_backoff=s.outbox_max_backoff,
            migrate=s.migrate,
            approval_wait=s.maap_approval_wait,
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """What the platform gets back: status, JSON body (None: no body) and headers."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


OK_ACK = {"errorCode": 0, "errorMessage": ""}


class ChatbotRuntime:
    def __init__(
        self,
        flows: FlowStore,
        templates: TemplateStore,
        config: RuntimeConfig,
        *,
        on_turn: Callable[[str, str], None] = lambda bot, result: None,
        on_send: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self.flows = flows
        self.config = config
        self.auth = config.auth
        self.on_turn = on_turn  # (bot, ok | duplicate | ignored): metrics
        self.on_send = on_send  # (ok | retry | fail): metrics
        self.listeners: list[Listener] = []
        self.status_listeners: list[StatusListener] = []
        self.message_listeners: list[MessageListener] = []
        self.store: Store = open_store(
            config.store,
            sqlite_path=config.sqlite_path,
            redis_url=config.redis_url,
            redis_wait=config.redis_wait,
            sync=config.sqlite_synchronous,
            dedupe_ttl=config.dedupe_ttl,
            migrate=config.migrate,
        )
        self.maap: MaapClient | None = None  # the default account's client
        self.clients: dict[str, MaapClient] = {}  # chatbot → its account's client
        self.hosts: dict[int, MediaHost] = {}  # id(client) → its media host (csp, cm)
        self.carriers: dict[int, str] = {}  # id(client) → its account's carrier profile
        self._all: list[MaapClient] = []
        self._session: aiohttp.ClientSession | None = None
        self.worker = OutboxWorker(
            self.store,
            self._reply,
            concurrency=config.outbox_concurrency,
            lease=config.outbox_lease,
            base_backoff=config.outbox_backoff,
            max_backoff=config.outbox_max_backoff,
            poll=config.outbox_poll,
            prune=self._prune,
        )
        self.engine = Engine(flows, templates, self.store, self.worker.wake)

    # -- lifetime ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store (raises ValueError, OSError or ConnectionError when it cannot), then the
        MaaP client and the outbox worker."""
        await self.store.open()
        accounts = [a for a in (self.config.maap, *self.config.accounts) if a is not None and a.url]
        if accounts:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(8, self.config.outbox_concurrency))
            )
        for account in accounts:
            client = self._client(account)
            self._all.append(client)
            self.carriers[id(client)] = account.profile
            if account.chatbots:
                self.clients.update(dict.fromkeys(account.chatbots, client))
            elif self.maap is None:
                self.maap = client
            if account.host_media and account.dialect in HOSTING_DIALECTS and self.config.media is not None:
                profile = PROFILES.get(account.profile) or PROFILES["default"]
                workdir = self.config.media_dir or Path(self.config.sqlite_path or ".").parent / "hosted"
                self.hosts[id(client)] = MediaHost(
                    client,
                    self.store,
                    self.config.media,
                    Limits.of(profile),
                    workdir,
                    label=account.profile,
                    approval_wait=self.config.approval_wait,
                    reviews=self._hears_reviews(account.dialect),
                )
        self.worker.start()

    def _hears_reviews(self, dialect: str) -> bool:
        """Whether the carrier's review decisions can reach us: some credential its callback
        route accepts is configured. Without one a permanent file would wait forever, so that
        account uploads everything temporary (not reviewed, by the interface's rule)."""
        policy = self.auth.policy("cm-audit" if dialect == "cm" else "csp-check")
        return policy is not None and any(s in policy.schemes for s in self.auth.enabled)

    def _client(self, account: MaapAccount) -> MaapClient:
        assert self._session is not None
        shared = self.store.tokens()
        return MaapClient(
            self._session,
            account.url,
            app_id=account.app_id,
            app_key=account.app_key,
            dialect=account.dialect,
            token_url=account.token_url,
            timeout=account.timeout,
            shared=shared,
            cm_secret=account.cm_secret,
            file_server=account.file_server,
            upload_mode=account.upload_mode,
        )

    @property
    def has_maap(self) -> bool:
        """Some MaaP account is configured (messages can go out)."""
        return bool(self._all)

    def client_for(self, chatbot: str) -> MaapClient | None:
        """The client of the account that sends for `chatbot`."""
        return self.clients.get(chatbot, self.maap)

    def carrier(self, chatbot: str) -> str:
        """The carrier profile of the account `chatbot` sends through ("" : none): what the
        carrier's decisions about its messages are recorded under."""
        client = self.client_for(chatbot)
        return self.carriers.get(id(client), "") if client is not None else ""

    def host_for(self, chatbot: str) -> MediaHost | None:
        client = self.client_for(chatbot)
        return self.hosts.get(id(client)) if client is not None else None

    async def close(self) -> None:
        await self.worker.stop()  # first: nothing is sent after this
        for client in self._all:
            await client.close()
        if self._session is not None:
            await self._session.close()
        await self.store.close()

    async def _prune(self) -> None:
        await self.store.prune(time.time(), self.config.dedupe_ttl, self.config.keep_sent)

    # -- sending -----------------------------------------------------------------------------
    async def send(self, body: dict[str, Any], *, card: bool = False) -> SendResult:
        """One message to the MaaP: a committed reply (the outbox worker), or a card (delivery;
        `card`: its files are its fixed design, sent only once the carrier approved them).
        Raises approval.NotApproved (nothing sent) when the body would name a file the carrier
        has not approved."""
        client = self.client_for(body.get("senderAddress", ""))
        if client is None:
            result = SendResult("retry", "no MaaP configured (MINGPIAN_MAAP_URL)", 60.0)
        else:
            result = await self._hosted(client, body, card)
            if result is None:
                result = await client.send(body)
        self.on_send(result.outcome)
        return result

    async def _reply(self, body: dict[str, Any]) -> SendResult:
        """The outbox's sends: a reply naming an unapproved file waits for the decision."""
        try:
            return await self.send(body)
        except NotApproved as exc:
            return SendResult("retry", exc.reason, 300.0)

    async def approval(self, chatbot: str, body: dict[str, Any]) -> NotApproved | None:
        """Whether a card's send would name a file not approved on `chatbot`'s platform (the dry
        run asks; nothing is uploaded)."""
        host = self.host_for(chatbot)
        return await host.check(body) if host is not None else None

    async def _hosted(self, client: MaapClient, body: dict[str, Any], card: bool) -> SendResult | None:
        """Upload the body's local media first (None: done, or nothing to upload)."""
        host = self.hosts.get(id(client))
        if host is None:
            return None
        try:
            await host.localise(body, card)
        except Unfit as exc:
            return SendResult("fail", f"media: {exc}"[:500])
        except UploadError as exc:
            return SendResult("retry" if exc.retryable else "fail", f"media upload: {exc}"[:500])
        except (TimeoutError, OSError) as exc:
            return SendResult("retry", f"media upload: {type(exc).__name__}: {exc}"[:500])
        return None

    async def host_file(
        self, chatbot: str, path: Path, content_type: str, thumbnail: tuple[Path, str] | None = None
    ) -> dict[str, Any] | None:
        """Any local file (a library file, say) hosted on the platform `chatbot` sends through:
        {url, until, contentType, size, thumbnail…}; None when that platform hosts no media.
        Raises fit.Unfit (naming the limit) or uploads.UploadError."""
        host = self.host_for(chatbot)
        if host is None:
            return None
        thumb = LocalFile(*thumbnail) if thumbnail else None
        return await host.host(chatbot, LocalFile(path, content_type), thumb)

    async def revoke(self, chatbot: str, message_id: str, user: str) -> SendResult:
        """Ask the platform to take back a message it accepted; the result arrives later as a
        status report (revokeOk / revokeFail)."""
        client = self.client_for(chatbot)
        if client is None:
            return SendResult("fail", "no MaaP configured (MINGPIAN_MAAP_URL)")
        return await client.revoke(chatbot, message_id, user)

    async def capability(self, chatbot: str, contact: str, path: str, timeout: float = 0.5) -> bool | None:
        """Whether `contact` can show 5G messages, asked in the account's dialect with its
        credentials (`path` empty: the dialect's own); None when there is no MaaP or it did not
        answer."""
        client = self.client_for(chatbot)
        if client is None:
            return None
        return await capabilities.lookup(client, chatbot, contact, path, timeout)

    async def information(self, chatbot: str) -> dict[str, Any]:
        """The chatbot's information in use (the carrier passed it) and the update under review
        or refused, on the platform `chatbot` sends through (botinfo.py)."""
        client = self.client_for(chatbot)
        platform = infoupdate.platform_of(client) if client is not None else ""
        return botinfo.view(await self.store.bot_info(platform, chatbot) if platform else None)

    async def submit_information(self, chatbot: str, info: dict[str, Any]) -> dict[str, Any]:
        """Submit an update of the chatbot's information (valid against botinfo.SCHEMA) to its
        platform; it is used once the carrier passed it. Raises errors.InfoUnsupported,
        InfoPending or InfoNotTaken (nothing recorded)."""
        return await infoupdate.update(self.store, self.client_for(chatbot), chatbot, info, time.time())

    async def message(self, message_id: str) -> dict[str, Any] | None:
        """Where one of our outbound messages is: queued, sent, failed, the platform's status."""
        return await self.store.message(message_id)

    # -- a turn answered on a web page ----------------------------------------------------------
    def bot_for(self, chatbot: str) -> str | None:
        """The loaded bot (folder) whose chatbot address is `chatbot` (compared loosely:
        `sip:106500@…`, `106500@…` and `106500` are one chatbot), or None."""
        want = _bot_id(chatbot)
        if not want:
            return None
        for bot, flow in self.flows.flows.items():
            if _bot_id(flow.chatbot) == want:
                return bot
        return None

    async def answer(self, bot: str, event: InboundEvent) -> list[Outbound]:
        """A user's tap or text that reached us from a web page (the H5 card page): the bot's
        turn, exactly as for a 5G event (same conversation when `event.user` is the same
        `tel:+86…`), committed without outbox rows — the replies are returned for the page to
        show and never sent over the MaaP. Listeners are not told: the page counts its own tap.
        Raises KeyError for an unknown bot, Busy when the conversation is too contended."""
        result, outs = await self.engine.answer(bot, event)
        self.on_turn(bot, result.value)
        return outs

    # -- inbound -----------------------------------------------------------------------------
    async def inbound(
        self,
        dialect: Dialect,
        bot: str,
        headers: Mapping[str, str],
        raw: bytes,
        params: Mapping[str, str],
        source: str | None = None,
    ) -> Ack:
        """Raises SourceRefused (403: `source`, the peer address, is outside the dialect's
        allowed networks), AuthError (401, a replay too), UnknownBot (404), MalformedBody or
        BadEvent (400) and Busy (503: retry) — each before anything but the nonce is stored."""
        policy = self.auth.policy(dialect)
        if policy is not None and not policy.admits(source):
            raise SourceRefused(f"callbacks of this route are not accepted from {source}")
        now = time.time()
        scheme = self.auth.verify(headers, raw, now, dialect)
        nonce = self.auth.nonce_key(headers, scheme)
        # Kept twice the window: a timestamp is accepted from `window` before now to `window` after.
        if nonce is not None and not await self.store.first_nonce(nonce, now, 2 * self.auth.replay_window):
            raise AuthError("this signature was already used (a replayed callback)")
        flow = self.flows.get(bot)
        if flow is None:
            raise UnknownBot(bot)
        door = self.DOORS.get(dialect)
        if door is None:
            raise ValueError(f"unknown dialect {dialect!r}")
        return await door(self, bot, flow.chatbot or bot, headers, raw, params)

    # One door per dialect: parse the callback, hand it on, answer as the platform expects.
    async def _csp_notify(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        return Ack(200, OK_ACK, {"echoStr": headers.get("echoStr", ""), "appId": self.config.app_id})

    async def _csp_status(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        await self._statuses(bot, from_csp_status(_json(raw)))
        return Ack(200, OK_ACK)

    async def _cm_status(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        await self._statuses(bot, cmxml.delivery(raw))
        return Ack(204)

    async def _csp_message(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        event = from_csp_message(_json(raw), params["chatbotId"])
        await self._turn(bot, event)
        ids = {
            "messageId": event.message_id,
            "conversationId": event.conversation_id,
            "contributionId": event.contribution_id,
        }
        return Ack(200, {**ids, **OK_ACK})

    async def _gsma(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        await self._turn(bot, from_gsma(_json(raw), chatbot))
        return Ack(200, {"status": "ok"})

    async def _csp_check(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        await self.decide(approval.from_csp_check(_json(raw)))
        return Ack(200, OK_ACK)

    async def _cm_audit(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        body = _json(raw) if raw.strip() else {}
        tid, status = headers.get("tid", "").strip(), headers.get("Authstatus", "").strip()
        await self.decide(approval.from_cm_audit(tid, status, body))
        return Ack(204)

    async def decide(self, d: Decision) -> None:
        """Apply a carrier's review decision, from any worker, idempotently. A decision naming
        nothing we hosted (another system's file, a record already expired) is logged and
        changes nothing. A decision about the chatbot's information decides the update waiting
        (infoupdate.py). A decision about a sent message goes to the message listeners
        (delivery: a card refused after the fact)."""
        if d.kind == "message":
            await self._tell(self.message_listeners, d)
            return
        if d.kind == "chatbotInformation":
            await infoupdate.decided(self.store, self.client_for(d.ref.removeprefix("chatbot:")), d)
            return
        found = await self.store.hosted_ref(d.ref)
        if found is None:
            log.info("review of an unknown file %s: ignored", d.ref[:200])
            return
        await self.store.update_hosted(*found, lambda record: approval.apply(record, d))

    async def _cm_message(self, bot: str, chatbot: str, headers: Headers, raw: bytes, params: Params) -> Ack:
        log.debug("CM inbound traceUniqueID=%s", headers.get("traceUniqueID", ""))
        await self._turn(bot, cmxml.inbound(raw, params["chatbotURI"]))
        return Ack(204)  # as OMA NetAPI notification receivers answer

    DOORS: Mapping[str, Door] = {
        "csp-notify": _csp_notify,
        "csp-status": _csp_status,
        "csp-check": _csp_check,
        "cm-status": _cm_status,
        "cm-audit": _cm_audit,
        "csp-message": _csp_message,
        "gsma": _gsma,
        "cm-message": _cm_message,
    }

    async def _statuses(self, bot: str, reports: list[StatusReport]) -> None:
        """Reports change only the messages this bot sent: a report on another bot's route
        (or naming another bot's message id) is acknowledged and changes nothing. A report that
        says the carrier refused the content is heard as that message's refusal too."""
        now = time.time()
        await self.store.record_status(list(reports), now, bot)
        outage: Unavailable | None = None
        for listener in self.status_listeners:
            try:
                await listener(reports)
            except Exception as exc:
                outage = outage or _outage_of(exc, "chatbot status listener %r failed", listener)
        for r in reports:
            refused = approval.from_report(r, now)
            if refused is not None:
                try:
                    await self._tell(self.message_listeners, refused)
                except Unavailable as exc:
                    outage = outage or exc
        if outage is not None:  # a listener could not store what it heard: the platform sends it again
            raise outage

    async def _tell(self, listeners: list[MessageListener], d: Decision) -> None:
        """Every listener hears the decision; one's bug is logged, an outage of the backend one
        stores in is raised after the others ran (the platform sends it again)."""
        outage: Unavailable | None = None
        for listener in listeners:
            try:
                await listener(d)
            except Exception as exc:
                outage = outage or _outage_of(
                    exc, "chatbot message listener %r failed for %s", listener, d.ref
                )
        if outage is not None:
            raise outage

    async def _turn(self, bot: str, event: InboundEvent) -> CommitResult | None:
        if event.kind == "status":
            await self._statuses(bot, list(event.statuses))
            return None
        if event.kind == "other":
            self.on_turn(bot, "ignored")
            return None
        result = await self.engine.handle(bot, event)  # Busy: the conversation is too contended
        self.on_turn(bot, result.value)
        if event.kind in ("text", "postback"):
            await self._tell_listeners(bot, event)
        return result

    async def _tell_listeners(self, bot: str, event: InboundEvent) -> None:
        """Listeners hear the user's text or tap after the turn committed — a repeat too, so a
        listener that failed (or a crash before it ran) catches up on the platform's retry.
        Awaited before the answer, so what they store (an opt-out) is durable before the
        platform is told. One listener's failure does not stop the others. A bug in one is
        logged and the webhook answered as usual (the turn is committed); an outage of the
        backend a listener stores in (PostgreSQL away while the chatbot's own store is up) is
        raised after the others ran, so the platform hears 503 and sends the message again: the
        engine then finds the turn done and skips it, but the listeners hear it again, and an
        opt-out or a tap is not lost."""
        outage: Unavailable | None = None
        for listener in self.listeners:
            try:
                await listener(bot, event)
            except Exception as exc:
                outage = outage or _outage_of(
                    exc, "chatbot listener %r failed for %s", listener, event.message_id
                )
        if outage is not None:
            raise outage


def _outage_of(exc: Exception, message: str, *args: object) -> Unavailable | None:
    """A listener's failure: an outage (noted once for the whole outage) to raise, or a bug, logged
    with its traceback (None)."""
    outage = unavailable(exc)
    if outage is None:
        log.error(message, *args, exc_info=exc)
    return outage


def _json(raw: bytes) -> Any:
    """Strict UTF-8, depth-limited by the parser itself (infra/jsonio.py)."""
    try:
        return jsonio.loads(raw)
    except jsonio.JSONDecodeError as exc:
        raise MalformedBody(f"malformed JSON: {exc}"[:300]) from None


def _bot_id(address: str) -> str:
    return address.strip().removeprefix("sip:").partition("@")[0]
