"""Troika's reviewer service: results in, verdicts out."""
