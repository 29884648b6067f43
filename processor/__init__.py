"""Shared runtime of personalization-streams: configuration, decoding, sinks, CLI."""

import warnings

from authlib.deprecate import AuthlibDeprecationWarning

# confluent-kafka's schema registry client imports authlib's httpx integration, which
# warns on every start about authlib's own future (and forces that warning "always" on
# import, hence the import first); nothing a user of pstreams can act on.
warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
