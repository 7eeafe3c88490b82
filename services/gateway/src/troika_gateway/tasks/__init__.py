"""Tasks: creation, listing, control, files and the event log."""
