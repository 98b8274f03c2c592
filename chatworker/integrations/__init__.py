"""Bring your own agent: adapters that run another framework's agent inside a chat turn.

Each submodule adapts one framework and imports it; importing ``chatworker`` (or this package)
imports none of them. ``return stream(agent, run)`` in a chat task streams the agent's reply as
AI SDK UI message chunks.
"""
