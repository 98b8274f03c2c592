"""The seed pages' code examples, ported to Python in both forms (sync and ``async def``), and
the tests that run them on a real worker against the scripted model server."""
