"""Exceptions shared by the runtime."""


class DecodeError(ValueError):
    """A record cannot be decoded; it belongs on the dead-letter topic, not in a crash."""
