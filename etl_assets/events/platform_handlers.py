"""The platform's own event handlers, chosen by the settings.

`events.store` registers them once per process before it runs any handler, so a run, the CLI
and a retry all run the same handlers.

- `webhook` (`events.webhook.Webhook`): when EVENTS_WEBHOOK_URL is set, every event is POSTed
  there as JSON.
"""

from __future__ import annotations

from etl_assets.config import Settings
from etl_assets.events.handlers import ALL_TOPICS, register_handler
from etl_assets.events.webhook import WEBHOOK, Webhook


def register_platform_handlers(settings: Settings) -> None:
    """Register the handlers the settings ask for (idempotent: same names replace)."""
    if settings.events_webhook_url:
        register_handler(
            ALL_TOPICS,
            Webhook(settings.events_webhook_url, settings.api_timeout_seconds),
            name=WEBHOOK,
        )
