"""Agents written with other frameworks, run as chat turns: one module per framework.

Each module's ``stream(agent, run)`` is a chunk source a chat task returns or passes to
``chat.pipe``. The frameworks are optional extras, imported only when their module is used;
importing ``chatworker`` imports none of them.
"""
