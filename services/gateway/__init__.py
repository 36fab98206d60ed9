"""The gateway: the public invoke and poll API.

It talks to NATS only. API keys and worklet heads come from in-memory views of the key-value
read model, a run is two JetStream publishes, and a synchronous answer arrives on this
process's own results subject.
"""
