"""Scheduled tasks: one-shot and repeating, kept in the database and fired through arq."""
