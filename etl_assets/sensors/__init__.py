"""Sensors: the inbox publisher, the dispatcher, and the run-failure watcher."""
