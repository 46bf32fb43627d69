"""The incidents page's protection against cross-site requests (pure: no database)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from tradeops.incidents import csrf

TOKEN = "T" * 43


def request(headers: dict[str, str], cookie: str | None = TOKEN) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    if cookie is not None:
        raw.append((b"cookie", f"{csrf.COOKIE}={cookie}".encode()))
    return Request({"type": "http", "method": "POST", "path": "/incidents/1/acknowledge", "headers": raw})


HOST = {"Host": "airflow.example:8080"}


@pytest.mark.parametrize(
    ("headers", "same"),
    [
        ({"Origin": "http://airflow.example:8080"}, True),
        ({"Origin": "https://airflow.example:8080"}, True),  # TLS ended at a proxy: the host is what matters
        ({"Origin": "http://localhost:8080"}, True),  # [api] base_url's host (the default, in tests)
        ({"Referer": "http://airflow.example:8080/tradeops/incidents?status=open"}, True),
        ({"Origin": "http://airflow.example:8081"}, False),
        ({"Origin": "http://evil.example"}, False),
        ({"Origin": "null"}, False),
        ({"Origin": "javascript://airflow.example:8080"}, False),
        ({"Referer": "http://evil.example/airflow.example:8080"}, False),
        ({}, False),
    ],
)
def test_same_origin(headers, same):
    assert csrf.same_origin(request(HOST | headers)) is same


def test_the_token_must_equal_the_cookie():
    good = HOST | {"Origin": "http://airflow.example:8080"}
    assert csrf.refusal(request(good), {csrf.FIELD: TOKEN}) is None
    assert "token" in csrf.refusal(request(good), {csrf.FIELD: "U" * 43})
    assert "token" in csrf.refusal(request(good), {})
    assert "token" in csrf.refusal(request(good, cookie=None), {csrf.FIELD: TOKEN})
    assert "token" in csrf.refusal(request(good, cookie="short"), {csrf.FIELD: "short"})
    assert "cross-origin" in csrf.refusal(request(HOST), {csrf.FIELD: TOKEN})


def test_a_page_keeps_a_valid_token_and_replaces_any_other():
    assert csrf.page_token(request({})) == (TOKEN, False)
    token, fresh = csrf.page_token(request({}, cookie="forged-by-someone"))
    assert fresh and len(token) == 43 and token != "forged-by-someone"
