"""Cross-site request forgery protection for the incidents page's actions.

A browser sends Airflow's JWT cookie (SameSite=Lax) with any request from the same site, so a page elsewhere on the
site could otherwise post a form that acknowledges or silences as the victim. Each action must therefore
(1) come from this server's own pages: its ``Origin`` header (else ``Referer``) names the host the request was sent
to, or ``[api] base_url``'s host; browsers send ``Origin`` with every form POST; and (2) carry the page's token in
the form field ``csrf_token``, equal to the ``tradeops_csrf`` cookie the page set (random, HttpOnly,
SameSite=Strict, scoped to the app's path): a page of another origin can neither read it nor know it.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "tradeops_csrf"
FIELD = "csrf_token"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


def page_token(request: Request) -> tuple[str, bool]:
    """The token for the page's forms: the browser's cookie when it has a valid one, else a new one (``True``:
    the response must set it with :func:`set_cookie`)."""
    token = request.cookies.get(COOKIE, "")
    if TOKEN.match(token):
        return token, False
    return secrets.token_urlsafe(32), True


def set_cookie(response: Response, request: Request, token: str, *, path: str) -> None:
    response.set_cookie(
        COOKIE, token, path=path, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def same_origin(request: Request) -> bool:
    """The request comes from a page of this server (see the module's docstring)."""
    from tradeops.reporting.links import airflow_base_url

    source = request.headers.get("origin") or request.headers.get("referer") or ""
    parts = urlsplit(source)  # a "null" origin (a sandboxed frame, a data: URL) has no host: refused
    allowed = {request.headers.get("host", ""), urlsplit(airflow_base_url()).netloc} - {""}
    return parts.scheme in ("http", "https") and parts.netloc in allowed


def refusal(request: Request, form: Mapping[str, str]) -> str | None:
    """Why the request is refused as possibly cross-site, or None when it is not."""
    if not same_origin(request):
        return "cross-origin request refused: actions must come from the incidents page (Origin/Referer)"
    cookie, token = request.cookies.get(COOKIE, ""), form.get(FIELD, "")
    if not TOKEN.match(cookie) or not hmac.compare_digest(cookie, token):
        return "the page's form token is missing or stale: reload the incidents page and try again"
    return None
