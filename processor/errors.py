"""Exceptions shared by the runtime."""


class DecodeError(ValueError):
    """A record cannot be decoded; it belongs on the dead-letter topic, not in a crash."""


class RegistryUnavailable(RuntimeError):
    """The schema registry could not answer (unreachable, 5xx, auth): retry later.

    Deliberately not a `DecodeError`: the record may be perfectly good, so it must not be
    dead-lettered; processing pauses until the registry answers again.
    """


class MissingInputTopic(RuntimeError):
    """An input topic did not appear in time: most likely misconfiguration, which must
    stop the topology rather than leave it waiting with a green health check."""
