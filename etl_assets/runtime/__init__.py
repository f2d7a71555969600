"""How Dagster runs the code: instance file, Celery run workers, in-process daemon, memory."""
