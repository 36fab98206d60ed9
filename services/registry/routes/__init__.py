"""The registry's HTTP API, one module per resource (docs/api.md, "Registry")."""
