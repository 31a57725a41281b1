"""The service\x27s HTTP API: one module per resource."""
