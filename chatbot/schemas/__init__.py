"""JSON Schemas of the webhook bodies we accept (documented in docs/chatbot.md)."""
