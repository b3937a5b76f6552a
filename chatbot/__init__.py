"""The hang-up-card chatbot: MaaP webhook events in, declarative flows, durable exactly-once replies.

Uses `renderer` for cards; knows nothing of the `mingpian` server, which maps HTTP onto the
runtime's two doors (`mingpian/api/chatbot.py`). The pieces, in the order an event meets them:

    runtime.py  builds everything below once per deployment; `inbound` and `send` are its doors
    auth.py     verify the platform's credentials on the raw body (before any parsing)
    events.py   validate + normalise CSP / GSMA JSON (cmxml.py: China Mobile XML) into one InboundEvent
    engine.py   dedupe + load state + turns.turn() + commit (state CAS + outbox) in one step
    flows.py    the declarative YAML flows; turns.py one turn of a conversation
    outbox.py   deliver committed replies through the MaaP client (maap.py), in order, with retries
    maap.py     the send API per dialect (csp JSON, cm XML: cmxml_out.py, gsma); codes.py what
                each answer means; capability.py 5G-terminal lookups; revokes
    hosting.py  a card's local media uploaded to the MaaP once (uploads.py), fitted (fit.py)
    store/      SQLite (embedded) and Redis (shared) state stores

The MaaP platform these talk to, simulated for tests, benchmarks and the studio's preview, is in
the top-level `simulators` package (simulators/maap.py), outside this one: no aiohttp server here.
"""
