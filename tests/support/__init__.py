"""Plain helpers shared by several test folders (no fixtures: those live in conftest.py files).

- templates: the project's TEMPLATES folder, write_template() for throw-away templates
- client: ClientFactory, the type of pytest-aiohttp's `aiohttp_client`
- processes: free ports and waiting for a real process to listen
- browser: the studio server thread and the page probe for the Chromium tests
- gatewaysim: the gateway simulator (an SMSC over SMPP, Kannel's sendsms) for delivery's tests
  and benchmark
"""
