"""Troika's desktop agent: runs on the user's PC and performs approved GUI actions."""
