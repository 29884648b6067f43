"""The embedded local stack, no Docker: Apache Kafka (KRaft), Apicurio Registry,
PostgreSQL and, where asked for, Kafka Connect with Debezium.

Use `stack.up`, `stack.stop`, `stack.down`, `stack.status`, `stack.recorded` and
`LocalStack.env()` to run it and point settings at it. docs/local-stack.md describes the
whole.
"""
