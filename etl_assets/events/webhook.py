"""The webhook event handler: one of the platform's own, registered by
`events.platform_handlers`.

When EVENTS_WEBHOOK_URL is set, every event is POSTed there as JSON
(`{"id", "topic", "job_id", "created_at", "payload"}`); a non-2xx answer or a network error
fails the handler run, which `etl events retry` sends again.
"""

from __future__ import annotations

import requests

from etl_assets.events.handlers import Event

WEBHOOK = "webhook"


class Webhook:
    """POSTs each event as JSON to one URL."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout

    def __call__(self, event: Event) -> None:
        """Send `event`; raises on a network error or a non-2xx answer (without the URL,
        which may carry a token)."""
        body = {
            "id": event.id,
            "topic": event.topic,
            "job_id": event.job_id,
            "created_at": event.created_at.isoformat(),
            "payload": event.payload,
        }
        try:
            response = requests.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise ConnectionError(f"webhook unreachable ({type(exc).__name__})") from None
        if response.status_code >= 300:
            raise RuntimeError(f"webhook answered HTTP {response.status_code}")
