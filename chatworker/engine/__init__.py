"""chatworker.engine."""
