"""A small local HTTP server that speaks the FX and catalog contracts, for the demo and tests.

FX (Frankfurter-style):  GET /fx/{YYYY-MM-DD}?base=EUR  ->  {"amount": 1.0, "base": "EUR",
    "date": "<the published date used>", "rates": {"USD": 1.08, ...}}
    A weekend or holiday answers with the last published rate (its own date); dates before
    1999-01-04 answer 404, as Frankfurter does. GET /fx/latest answers for today.
Catalog:  GET /catalog/products?skus=A,B  ->  {"products": [{"sku", "name", "category"}],
    "missing": [...]}; GET /catalog/products/{sku} -> one product or 404.
    SKU-0001 .. SKU-0999 exist; anything else is missing.

Faults for tests, set in-process (`server.faults`) or over HTTP so that runs in other
processes see them: POST /_admin/faults {"path_prefix": "/fx", "status": 503, "count": 2,
"retry_after": 1, "latency_seconds": 0.2}; DELETE /_admin/faults; GET /_admin/stats gives the
number of calls per path.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIRST_FX_DATE = dt.date(1999, 1, 4)
BASE_RATES_PER_EUR = {
    "USD": 1.08,
    "GBP": 0.86,
    "JPY": 160.0,
    "CHF": 0.95,
    "CAD": 1.47,
    "AUD": 1.65,
    "SEK": 11.3,
    "NOK": 11.6,
    "DKK": 7.46,
    "PLN": 4.3,
}
CATEGORIES = ("apparel", "footwear", "home", "garden", "toys", "books", "grocery", "beauty")
KNOWN_SKUS = 999


@dataclass
class Fault:
    """Answer `count` matching requests (or all, when count is None) with `status`."""

    path_prefix: str
    status: int = 503
    count: int | None = None
    retry_after: float | None = None
    latency_seconds: float = 0.0


@dataclass
class FaultPlan:
    """The faults in force and a count of calls per path; thread-safe."""

    faults: list[Fault] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    latency_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, fault: Fault) -> None:
        """Put a fault in force."""
        with self._lock:
            self.faults.append(fault)

    def clear(self) -> None:
        """Remove every fault and forget the call counts."""
        with self._lock:
            self.faults.clear()
            self.calls.clear()

    def record(self, path: str) -> Fault | None:
        """Count a call to `path`; return the fault that answers it, if any."""
        with self._lock:
            self.calls[path] += 1
            for fault in self.faults:
                if path.startswith(fault.path_prefix) and fault.count != 0:
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    def calls_to(self, prefix: str) -> int:
        """Calls so far to paths starting with `prefix`."""
        with self._lock:
            return sum(n for path, n in self.calls.items() if path.startswith(prefix))


def published_date(day: dt.date) -> dt.date:
    """The date whose rates answer for `day`: the last business day on or before it."""
    while day.weekday() >= 5 or (day.month, day.day) in {(1, 1), (12, 25)}:
        day -= dt.timedelta(days=1)
    return day


def rates_on(day: dt.date, base: str) -> dict[str, float]:
    """Deterministic rates for a published date: the same inputs always give the same rates."""
    drift = 1 + 0.03 * math.sin(day.toordinal() / 17)
    per_eur = {"EUR": 1.0} | {c: round(r * drift, 5) for c, r in BASE_RATES_PER_EUR.items()}
    if base not in per_eur:
        raise KeyError(base)
    return {c: round(r / per_eur[base], 6) for c, r in per_eur.items() if c != base}


def product(sku: str) -> dict[str, str] | None:
    """The catalog record of `sku`, or None when the catalog has none."""
    if not sku.startswith("SKU-") or not sku[4:].isdigit():
        return None
    number = int(sku[4:])
    if not 1 <= number <= KNOWN_SKUS:
        return None
    return {
        "sku": sku,
        "name": f"Product {number:04d}",
        "category": CATEGORIES[number % len(CATEGORIES)],
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: tests and the demo read the server's stats, not its access log

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/healthz":
            return self._send(200, {"status": "ok"})
        if url.path == "/_admin/stats":
            return self._send(200, {"calls": dict(self.server.plan.calls)})
        if self._injected(url.path):
            return
        if url.path.startswith("/fx/"):
            return self._fx(url.path.removeprefix("/fx/"), query)
        if url.path == "/catalog/products":
            return self._products(query)
        if url.path.startswith("/catalog/products/"):
            found = product(url.path.removeprefix("/catalog/products/"))
            return self._send(200, found) if found else self._send(404, {"message": "not found"})
        self._send(404, {"message": "not found"})

    def do_POST(self) -> None:
        if self.path != "/_admin/faults":
            return self._send(404, {"message": "not found"})
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.plan.add(Fault(**body))
        self._send(201, {"status": "added"})

    def do_DELETE(self) -> None:
        if self.path != "/_admin/faults":
            return self._send(404, {"message": "not found"})
        self.server.plan.clear()
        self._send(200, {"status": "cleared"})

    def _injected(self, path: str) -> bool:
        plan = self.server.plan
        fault = plan.record(path)
        delay = plan.latency_seconds + (fault.latency_seconds if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault is None or fault.status < 400:
            return False
        # Retry-After carries whole seconds (RFC 9110).
        retry_after = fault.retry_after
        headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else {}
        self._send(fault.status, {"message": "injected fault"}, headers)
        return True

    def _fx(self, which: str, query: dict[str, list[str]]) -> None:
        base = query.get("base", query.get("from", ["EUR"]))[0].upper()
        try:
            day = dt.date.today() if which == "latest" else dt.date.fromisoformat(which)
        except ValueError:
            return self._send(400, {"message": f"invalid date {which!r}"})
        if day < FIRST_FX_DATE:
            return self._send(404, {"message": "not found"})
        published = published_date(min(day, dt.date.today()))
        try:
            rates = rates_on(published, base)
        except KeyError:
            return self._send(404, {"message": "not found"})
        body = {"amount": 1.0, "base": base, "date": published.isoformat(), "rates": rates}
        self._send(200, body)

    def _products(self, query: dict[str, list[str]]) -> None:
        skus = [s for value in query.get("skus", []) for s in value.split(",") if s]
        found = [p for p in map(product, skus) if p is not None]
        missing = sorted(set(skus) - {p["sku"] for p in found})
        self._send(200, {"products": found, "missing": missing})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    plan: FaultPlan


class ReferenceApiServer:
    """The reference APIs on 127.0.0.1, in a background thread. Use as a context manager."""

    def __init__(self, port: int = 0, *, latency_seconds: float = 0.0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.plan = FaultPlan(latency_seconds=latency_seconds)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def faults(self) -> FaultPlan:
        """Faults and call counts, for tests in this process."""
        return self._server.plan

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8765."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def fx_url(self) -> str:
        """The FX API's base URL (FX_API_URL)."""
        return f"{self.url}/fx"

    @property
    def catalog_url(self) -> str:
        """The catalog API's base URL (CATALOG_API_URL)."""
        return f"{self.url}/catalog"

    def start(self) -> ReferenceApiServer:
        """Serve in the background; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (for `etl reference-api`)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def __enter__(self) -> ReferenceApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
