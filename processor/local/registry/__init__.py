"""A Confluent-compatible schema registry for the local stack and tests, Avro only.

It serves the subset of Confluent's REST API that confluent-kafka's `SchemaRegistryClient`
and Avro serdes use, and keeps schemas in the local PostgreSQL. Not for production: no
authentication, and compatibility levels are stored and reported but not enforced.
"""
