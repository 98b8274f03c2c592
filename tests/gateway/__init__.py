"""Helpers shared by the gateway tests."""
