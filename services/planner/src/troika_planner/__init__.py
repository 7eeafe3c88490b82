"""Troika's planner service: objectives in, plans out."""
