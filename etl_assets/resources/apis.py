"""Clients of the enrichment APIs: FX rates (Frankfurter-style) and the product catalog.

Each call has a timeout; an HTTP error is raised as `requests.HTTPError` and classified in
`etl_assets.errors` (5xx, 408, 429 transient; other 4xx permanent). A job asks each API at
most once per distinct key (a date, a batch of SKUs), never once per row; up to
`concurrency` requests run at once, no more than `rate_per_second` start each second, and
FX rates of past dates, which never change, are cached on disk across jobs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import requests
from pydantic import PrivateAttr

from etl_assets.config import Settings

CATALOG_BATCH = 100  # SKUs per catalog request: keeps URLs well under common length limits


class RateLimiter:
    """Lets at most `rate` calls start per second (evenly spaced); thread-safe."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Block until the next call may start."""
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class HttpApiResource(dg.ConfigurableResource):
    """A JSON-over-HTTP API reached through one pooled `requests.Session` with timeouts."""

    base_url: str
    api_token: str | None = None
    timeout_seconds: float = 10.0
    concurrency: int = 4
    rate_per_second: float = 0.0  # 0: no limit
    _session: requests.Session | None = PrivateAttr(default=None)
    _limiter: RateLimiter | None = PrivateAttr(default=None)
    _calls: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def calls(self) -> int:
        """HTTP requests this resource made (for metrics and the one-call-per-key tests)."""
        return self._calls

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET base_url/path and decode JSON; raises requests.HTTPError on an error status."""
        with self._lock:
            if self._session is None:
                self._session = _session(self.api_token, self.concurrency)
                self._limiter = RateLimiter(self.rate_per_second)
            self._calls += 1
            session, limiter = self._session, self._limiter
        assert limiter is not None
        limiter.wait()
        response = session.get(
            f"{self.base_url.rstrip('/')}/{path.lstrip('/')}",
            params=params,
            timeout=self.timeout_seconds,
        )
        response.raise_for_status()
        return response.json()

    def map_concurrently(self, fetch: Callable[[Any], Any], keys: list[Any]) -> list[Any]:
        """`fetch(key)` for every key, `concurrency` at a time; results in key order.

        The first error is raised (the others are left to finish).
        """
        if len(keys) <= 1 or self.concurrency <= 1:
            return [fetch(key) for key in keys]
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="api") as pool:
            return list(pool.map(fetch, keys))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close pooled connections when the run's resources are torn down."""
        if self._session is not None:
            self._session.close()


class FxRatesResource(HttpApiResource):
    """Frankfurter-style FX rates: GET {base_url}/{date}?base=EUR answers every currency's rate.

    A weekend or holiday answers with the last published rate, whose own date is returned.
    Answers for dates before today are final: with `cache_dir`, each is fetched once and
    then read from disk by every later job.
    """

    cache_dir: str | None = None

    def rates(self, pairs: Iterable[tuple[str, str]], reporting_currency: str) -> pd.DataFrame:
        """Rates for distinct (date, currency) pairs: one request per distinct date.

        Returns date, currency, fx_rate (reporting currency per unit of `currency`) and
        fx_date (the published date). A currency the API does not know is simply absent.
        """
        by_date: dict[str, set[str]] = {}
        for day, currency in pairs:
            by_date.setdefault(day, set()).add(currency)
        rows: list[tuple[str, str, float, str]] = [
            (day, reporting_currency, 1.0, day)
            for day, currencies in by_date.items()
            if reporting_currency in currencies
        ]
        foreign = sorted(day for day, c in by_date.items() if c - {reporting_currency})
        answers = self.map_concurrently(lambda day: self.day(day, reporting_currency), foreign)
        for day, answer in zip(foreign, answers, strict=True):
            published, rates = answer["date"], answer["rates"]
            for currency in by_date[day] - {reporting_currency}:
                if currency in rates:
                    rows.append((day, currency, 1.0 / float(rates[currency]), published))
        rows.sort()
        return pd.DataFrame(rows, columns=["date", "currency", "fx_rate", "fx_date"])

    def day(self, day: str, base: str) -> dict[str, Any]:
        """The API's answer for one date, from the cache when the date is in the past."""
        cached = self._cache_path(day, base)
        if cached is not None and cached.exists():
            answer: dict[str, Any] = json.loads(cached.read_text())
            return answer
        answer = self.get_json(day, {"base": base})
        if cached is not None:
            _write_atomically(cached, json.dumps(answer))
        return answer

    def _cache_path(self, day: str, base: str) -> Path | None:
        if not self.cache_dir or dt.date.fromisoformat(day) >= dt.datetime.now(dt.UTC).date():
            return None  # today's rate may still be published later today
        return Path(self.cache_dir) / "fx" / base / f"{day}.json"


class CatalogResource(HttpApiResource):
    """The product catalog: GET {base_url}/products?skus=A,B answers products and missing SKUs."""

    def products(self, skus: Iterable[str]) -> pd.DataFrame:
        """sku, product_name and category for each known SKU, in batches of CATALOG_BATCH."""
        wanted = sorted(set(skus))
        batches = [wanted[i : i + CATALOG_BATCH] for i in range(0, len(wanted), CATALOG_BATCH)]
        answers = self.map_concurrently(
            lambda batch: self.get_json("products", {"skus": ",".join(batch)}), batches
        )
        rows = [
            (p["sku"], p["name"], p["category"]) for answer in answers for p in answer["products"]
        ]
        return pd.DataFrame(rows, columns=["sku", "product_name", "category"])


def enrichment_clients(
    settings: Settings, token: Callable[[str, str], Any] | None = None
) -> dict[str, HttpApiResource]:
    """Every enrichment API client, by the resource key datasets name in their enrichments."""
    fx, catalog = api_clients(settings, token)
    return {"fx_api": fx, "catalog_api": catalog}


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
        concurrency=settings.api_concurrency,
        rate_per_second=settings.fx_api_rate_per_second,
        cache_dir=str(Path(settings.staging_dir) / "cache"),
    )
    catalog = CatalogResource(
        base_url=settings.catalog_api_url,
        api_token=token("CATALOG_API_TOKEN", settings.catalog_api_token),
        timeout_seconds=settings.api_timeout_seconds,
        concurrency=settings.api_concurrency,
        rate_per_second=settings.catalog_api_rate_per_second,
    )
    return fx, catalog


def _session(token: str | None, connections: int) -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=max(connections, 1))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)
