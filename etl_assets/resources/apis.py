"""Clients of the enrichment APIs: FX rates (Frankfurter-style) and the product catalog.

Each call has a timeout; an HTTP error is raised as `requests.HTTPError` and classified in
`etl_assets.errors` (5xx, 408, 429 transient; other 4xx permanent). A job asks each API once
per distinct key (a date, a batch of SKUs), never once per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import dagster as dg
import pandas as pd
import requests
from pydantic import PrivateAttr

from etl_assets.config import Settings

CATALOG_BATCH = 100  # SKUs per catalog request: keeps URLs well under common length limits


class HttpApiResource(dg.ConfigurableResource):
    """A JSON-over-HTTP API reached through one pooled `requests.Session` with timeouts."""

    base_url: str
    api_token: str | None = None
    timeout_seconds: float = 10.0
    _session: requests.Session | None = PrivateAttr(default=None)
    _calls: int = PrivateAttr(default=0)

    @property
    def calls(self) -> int:
        """HTTP requests this resource made (for metrics and the one-call-per-key tests)."""
        return self._calls

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET base_url/path and decode JSON; raises requests.HTTPError on an error status."""
        if self._session is None:
            self._session = requests.Session()
            if self.api_token:
                self._session.headers["Authorization"] = f"Bearer {self.api_token}"
        self._calls += 1
        response = self._session.get(
            f"{self.base_url.rstrip('/')}/{path.lstrip('/')}",
            params=params,
            timeout=self.timeout_seconds,
        )
        response.raise_for_status()
        return response.json()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close pooled connections when the run's resources are torn down."""
        if self._session is not None:
            self._session.close()


class FxRatesResource(HttpApiResource):
    """Frankfurter-style FX rates: GET {base_url}/{date}?base=EUR answers every currency's rate.

    A weekend or holiday answers with the last published rate, whose own date is returned.
    """

    def rates(self, pairs: Iterable[tuple[str, str]], reporting_currency: str) -> pd.DataFrame:
        """Rates for distinct (order_date, currency) pairs: one request per distinct date.

        Returns order_date, currency, fx_rate (reporting currency per unit of `currency`) and
        fx_date (the published date). A currency the API does not know is simply absent.
        """
        by_date: dict[str, set[str]] = {}
        for day, currency in pairs:
            by_date.setdefault(day, set()).add(currency)
        rows: list[tuple[str, str, float, str]] = []
        for day, currencies in sorted(by_date.items()):
            foreign = currencies - {reporting_currency}
            if reporting_currency in currencies:
                rows.append((day, reporting_currency, 1.0, day))
            if not foreign:
                continue
            answer = self.get_json(day, {"base": reporting_currency})
            published, rates = answer["date"], answer["rates"]
            rows.extend((day, c, 1.0 / float(rates[c]), published) for c in foreign if c in rates)
        return pd.DataFrame(rows, columns=["order_date", "currency", "fx_rate", "fx_date"])


class CatalogResource(HttpApiResource):
    """The product catalog: GET {base_url}/products?skus=A,B answers products and missing SKUs."""

    def products(self, skus: Iterable[str]) -> pd.DataFrame:
        """sku, product_name and category for each known SKU, in batches of CATALOG_BATCH."""
        wanted = sorted(set(skus))
        rows: list[tuple[str, str, str]] = []
        for start in range(0, len(wanted), CATALOG_BATCH):
            batch = wanted[start : start + CATALOG_BATCH]
            answer = self.get_json("products", {"skus": ",".join(batch)})
            rows.extend((p["sku"], p["name"], p["category"]) for p in answer["products"])
        return pd.DataFrame(rows, columns=["sku", "product_name", "category"])


def api_clients(
    settings: Settings, token: Callable[[str, str], Any] | None = None
) -> tuple[FxRatesResource, CatalogResource]:
    """The FX and catalog clients the settings point at.

    `token(NAME, value)` gives what goes into `api_token`; Dagster definitions pass
    `secret_source` so that tokens reach runs as EnvVars, other callers the value itself.
    """
    token = token or (lambda _name, value: value or None)
    fx = FxRatesResource(
        base_url=settings.fx_api_url,
        api_token=token("FX_API_TOKEN", settings.fx_api_token),
        timeout_seconds=settings.api_timeout_seconds,
    )
    catalog = CatalogResource(
        base_url=settings.catalog_api_url,
        api_token=token("CATALOG_API_TOKEN", settings.catalog_api_token),
        timeout_seconds=settings.api_timeout_seconds,
    )
    return fx, catalog
