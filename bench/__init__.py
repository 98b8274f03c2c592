"""Benchmarks: what durability costs next to a plain streaming route (``python -m bench``)."""
