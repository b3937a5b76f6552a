"""The other side of Mingpian's wires, played locally: platforms and gateways that answer the way
the real ones do, for the test suite, the benchmarks, the studio's preview bot and a demo (the
MaaP and the SMSC also run alone, with `python -m`, beside a `mingpian serve`).

    maap.py          a MaaP platform (5G messages) in its three dialects: CT/CU's CSP JSON and
                     GSMA's send APIs, tokens, webhook calls signed like the platform's, faults
                     on command; maap_carrier.py is China Mobile's XML side, media uploads and
                     the files served back, revokes and capability lookups. Used by the chatbot
                     and delivery tests, bench/chatbot_bench.py, bench/maap_upload_bench.py,
                     bench/outage_bench.py and the studio's preview bot
                     (mingpian/studio/preview_bot.py). Alone: `python -m simulators.maap`.
    smsc.py          an SMS gateway: an SMSC speaking SMPP 3.4 (binds, submits, receipts, an
                     account's limits, failures on command) and Kannel's HTTP sendsms, with an
                     HTTP control API. Used by the delivery tests and bench/delivery_bench.py,
                     delivery_cpu_bench.py, fleet_bench.py and outage_bench.py. Alone:
                     `python -m simulators.smsc`.
    cardsms.py       a card-SMS platform (Huawei KooMessage's AIM shapes) and the handset vendors
                     behind it: templates reviewed per vendor, capability per phone, parse links,
                     signed callbacks; told by the SMSC simulator what reached a phone, it draws
                     the card and sends the render receipt. Used by the card-SMS tests and
                     bench/cardsms_bench.py. Alone: `python -m simulators.cardsms`.
    smppcheck.py     a second opinion on every PDU the SMSC receives: read by PyPI `smpplib`
                     (the test extra's) rather than by our own codec, addresses read as a Chinese
                     SMSC reads them. The test suite fails a test on any problem it finds.
    hostile.py       a hostile designer: template expressions that run for seconds or allocate
                     gigabytes unless the render's budget stops them; the budget test and
                     bench/template_budget_bench.py read the same list.
    seeds.py         the customers of a run: two sample enterprises (sf, a courier; cmb, a bank)
                     with their keys, lines, staff, cards and package, as a `delivery_seed`
                     document; the delivery tests and bench/outage_bench.py run on them.
    servers.py       not simulators but throw-away real servers (a PostgreSQL cluster, a
                     redis-server) that a run can stop, freeze and start again, free ports, and
                     Debian's Chromium's path and flags. Here because the test suite and the
                     benchmarks both start them and a benchmark imports nothing from tests/.

They are kept out of the domain packages because they serve HTTP (aiohttp's web side, which only
the server and this package know) and because no chatbot or delivery path depends on them: in the
server, only the studio's preview bot (a sandbox with a platform of its own) and the demo
(mingpian/demo/: the MaaP, the SMSC and the card-SMS platform as the carrier network of a server
with nothing configured) use them. They may
use the domain packages' codecs (chatbot's signing and XML reading, delivery's SMPP PDUs); no
domain package imports them.
"""
