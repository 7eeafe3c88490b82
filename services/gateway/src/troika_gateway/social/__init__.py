"""Social accounts: connecting them, and choosing and renewing one for a post."""
