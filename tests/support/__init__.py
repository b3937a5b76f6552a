"""Plain helpers shared by several test folders (no fixtures: those live in conftest.py files).

- templates: the project's TEMPLATES folder, write_template() for throw-away templates
- client: ClientFactory, the type of pytest-aiohttp's `aiohttp_client`
- processes: `mingpian serve` in a process of its own (free ports and waiting for a process to
  listen come from simulators/servers.py, as do the throw-away PostgreSQL and Redis servers)
- browser: the studio server thread and the page probe for the Chromium tests

The simulators the tests talk to (the MaaP, the SMSC and its independent PDU reader) are in the
top-level `simulators` package, which the benchmarks and the studio use too.
"""
