"""Events: an outbox table, handlers per topic, every outcome kept."""
