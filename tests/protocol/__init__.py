"""Tests of the protocol layer: AI SDK messages, chunks, assembling, conversion, partial JSON."""
