"""One log format for the platform: `[timestamp] [level] [component] message`."""

from __future__ import annotations

import logging

LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send the platform's own loggers (`etl_assets.*`) to stderr in the one format."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger("etl_assets")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
