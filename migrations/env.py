"""Alembic environment: migrations always run on a connection handed over by the ledger."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("skillopt migrations run through the ledger (skillopt db upgrade)")
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
