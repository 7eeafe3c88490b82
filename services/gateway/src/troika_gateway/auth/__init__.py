"""Accounts and sessions: passwords, tokens, rate limits and the authentication middleware."""
