"""Alembic environment: migrations run on the connection ``Database.migrate`` hands over
(inside its transaction), never on one of their own."""

from alembic import context

from gateway.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
