"""Alembic environment: migrations run on a connection that ``llama_zoo.results.db`` hands over."""

from alembic import context

from llama_zoo.results.orm import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
