"""Database layer: tables, engine and transactions, Alembic migrations."""
