"""The Redis store: everything that touches Redis for run state.

Key names (:mod:`.keys`), the Lua scripts (``lua/*.lua``) behind typed methods that own their
KEYS and ARGV (:class:`.run_store.RunStore`, :mod:`.slots`, :mod:`.credentials`), the run
record (:mod:`.records`), the output streams (:mod:`.streams`) and the operator's view of
the runs (:mod:`.run_index`). Nothing outside this package names a key or calls a script.
"""
