"""Troika's executor service: steps in, proposed tool calls or results out; runs approved calls."""
