"""The server's HTTP API modules, one per feature (and, for delivery, one per resource)."""
