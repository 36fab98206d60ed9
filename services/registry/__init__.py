"""The registry: owns MongoDB; serves the management API, keeps the key-value read model,
records run events, and answers ``runs.get`` look-ups."""
