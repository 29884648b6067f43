"""CDC decoders: Debezium PostgreSQL rows and DynamoDB items."""
