"""The hang-up-card chatbot: MaaP webhook events in, declarative flows, durable exactly-once replies.

Uses `renderer` for cards; knows nothing of the `mingpian` server, which wires it to HTTP
(`mingpian/api_chatbot.py`). The pieces, in the order an event meets them:

    auth.py    verify the platform's credentials on the raw body (before any parsing)
    events.py  validate + normalise CSP / GSMA JSON into one InboundEvent
    engine.py  dedupe + load state + turns.turn() + commit (state CAS + outbox) in one step
    outbox.py  deliver committed replies to the MaaP (maap.py), in order, with retries
"""
