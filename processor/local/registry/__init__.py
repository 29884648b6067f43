"""A schema registry for the local stack and tests: the subset of Confluent's REST API
that confluent-kafka's `SchemaRegistryClient` and Avro serdes use, Avro only, persisted
in the local PostgreSQL. Not for production: there is no authentication, and
compatibility levels are stored and reported but not enforced."""
