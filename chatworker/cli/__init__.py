"""Developer tools, the top layer: the ``chatworker`` command and what its subcommands run.

- :mod:`.main`: the argument parser and the subcommands (``dev``, ``chat``, ``token``, ``runs``);
  the console script ``chatworker`` calls :func:`main`.
- :mod:`.terminal`: the terminal chat client behind ``chatworker chat``.
- :mod:`.dev`: the local stack behind ``chatworker dev`` (Redis, model, worker, gateway).
- :mod:`.devstate`: the state file through which the other commands find a running
  ``chatworker dev`` from any folder.

Nothing else in the package imports from here.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
