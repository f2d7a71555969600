"""Files in: the inbox and `etl submit` become pending jobs."""
