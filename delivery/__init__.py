"""Calling-card delivery: call events in, the right card out on the right channel, with
fallback, receipts, quotas and reports (docs/delivery.md).

A domain package beside `renderer` and `chatbot`: it uses both (cards are rendered and
degraded by `renderer`; 5G messages go through the chatbot runtime's MaaP client) and knows
nothing of the web server, which builds a `DeliveryService` and calls into it. A call event,
module by module, never returning to one it left:

    intake.py     the event → a durable delivery row (dedupe, the line's enterprise)
    chain.py      the channel chain: charge, hand over, wait for a receipt or time out, fall over
    compose.py    which card, with which data and brand, rendered and degraded once
    gateways/     SMPP, Kannel and MaaP channels; the SMPP codec and client
    receipts.py   the one door for receipts (SMPP, Kannel, other processes) → attempt outcome
    metering/     packages, atomic counters (SQLite or Redis) and the ledger reports read
    replies.py    opt-outs and taps, from any channel

Beside them: `store.py` the durable state (its SQL per aggregate in `rows/`, run by a driver
in `drivers/`; the roles consumers use in `storage.py`; the schema in `migrations/`), `model.py`
the resource schemas and phone numbers, `rules.py` opt-out words, quiet hours and caps,
`keys.py` API keys, `seed.py` the YAML seed, `wakeups.py` how a waiting chain is woken, and
`service.py` which assembles them all.
"""
