"""Independent batch reference model of SPEC section 2 and PostgreSQL comparison helpers."""
