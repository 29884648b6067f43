"""The embedded local stack: Tansu broker, PostgreSQL and a schema registry, no Docker.

Use `stack.up`, `stack.down`, `stack.status`, `stack.recorded` and `LocalStack.env()` to
run it and point settings at it, and `broker.create_topics` to create topics the way
Tansu needs them. docs/local-stack.md describes the whole.
"""
