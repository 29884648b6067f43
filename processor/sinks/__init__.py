"""Sinks: where derived tables leave the stream processor."""
