"""The embedded local stack: Tansu broker, PostgreSQL and a schema registry, no Docker."""
