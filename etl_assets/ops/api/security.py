"""The security headers every response of the ops API carries.

The dashboard keeps an operator's token in the browser, on the API's origin, so nothing on
that origin may load code from elsewhere or be framed by another site. The Content-Security-
Policy allows the page's own origin only (`fetch` to `/v1`), and of inline code exactly the
dashboard's one `<script>` and one `<style>` element, by their SHA-256 hashes: an injected
script or style does not run. Swagger UI's `/docs` and ReDoc's `/redoc`, which load their
code from a CDN, are not served (see `create_app`); `/openapi.json` is.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

DASHBOARD = "static/dashboard.html"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def dashboard_html() -> str:
    """The dashboard page as shipped."""
    return resources.files("etl_assets.ops").joinpath(DASHBOARD).read_text(encoding="utf-8")


def _hashes(html: str, tag: str) -> list[str]:
    """CSP source expressions for the inline `<tag>` elements of `html`."""
    found = []
    for name, body in _INLINE.findall(html):
        if name == tag:
            digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
            found.append(f"'sha256-{digest}'")
    return found


def content_security_policy(html: str) -> str:
    """The policy: own origin only, the page's inline script and style by hash, no framing,
    no plugins, no `<base>` or form posts elsewhere."""
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *_hashes(html, "script")],
        "style-src": ["'self'", *_hashes(html, "style")],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def security_headers(html: str) -> list[tuple[bytes, bytes]]:
    """The headers added to every response, as ASGI header pairs."""
    headers = {
        "content-security-policy": content_security_policy(html),
        "x-frame-options": "DENY",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    return [(name.encode(), value.encode()) for name, value in headers.items()]
