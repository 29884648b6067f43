"""Shared runtime of personalization-streams: configuration, decoding, sinks, CLI."""
