"""The scheduler: turns schedules into timed runs on stream RUNS.

For now it is a minimal service: it connects to NATS, keeps its health file fresh and waits for
SIGTERM. Scheduling itself (APScheduler 3.x, schedules read from the registry's read model,
each slot fired exactly once across replicas) arrives with the scheduler issue.
"""
