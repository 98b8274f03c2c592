"""Bring your own agent: run an agent written with another framework inside a chat run.

Each framework has its own module (``chatworker.integrations.pydantic_ai``, ``.openai_agents``,
``.langgraph``) with a ``stream(agent, run, **options)`` that returns a chunk source a chat task
returns or passes to ``chat.pipe``. Importing this package imports no framework: only importing a
framework's module does, and that module needs the framework's extra installed
(``pip install 'chatworker[pydantic-ai]'``).
"""
