"""The delivery store's SQL, written once per aggregate over a driver (delivery/drivers/).

    resources.py  enterprises, lines, staff, cards, packages (JSON documents), the audit log,
                  API keys, chatbot owners; the read caches every call event uses
    media.py      the media library's rows
    calls.py      call events, deliveries, their chains' leases, attempts, message ids, receipts
    reach.py      opt-outs, taps, impressions, replies seen, delivery reports
    ledger.py     the metering ledger (charges) and the usage reports read from it
    console.py    paged and searched lists, bulk writes, keys held, sign-in sessions

Each module is a mixin of the one store class (delivery/store.py), using its `db` (the driver)
and nothing of the others' state but the read caches that resources.py keeps.
"""
