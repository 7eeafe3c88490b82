"""The task pipeline: the state machine, its outbox, and the orchestrator that drives it."""
