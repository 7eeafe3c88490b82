"""The ``troika`` command: the whole system on one machine, and a terminal client."""
