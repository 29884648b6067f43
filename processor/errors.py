"""Exceptions shared by the runtime."""


class DecodeError(ValueError):
    """A record cannot be decoded; it belongs on the dead-letter topic, not in a crash."""


class RegistryUnavailable(RuntimeError):
    """The schema registry could not answer (unreachable, 5xx, auth): retry later.

    Deliberately not a `DecodeError`: the record may be perfectly good, so it must not be
    dead-lettered; processing pauses until the registry answers again.
    """


class ConfigurationError(RuntimeError):
    """Misconfiguration found once running (an input topic that never appears, a schema
    registry that knows nothing): it stops the topology with a message naming the
    variable, rather than leave it waiting or dead-lettering good records."""


class MissingInputTopic(ConfigurationError):
    """An input topic did not appear within `INPUT_TOPIC_WAIT_S`."""


class MisconfiguredRegistry(ConfigurationError):
    """`SCHEMA_REGISTRY_URL` does not lead to a registry holding the inputs' schemas."""


class LakeUnavailable(ConfigurationError):
    """`LAKE_URL` names a place the topology cannot write (no such bucket, no access)."""
