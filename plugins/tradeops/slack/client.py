"""Posting to Slack through the provider's ``SlackHook`` (Web API), with slack_sdk's retry handlers.

Rate limits (HTTP 429) are retried after Slack's ``Retry-After``; connection and server errors are retried too.
"""

from __future__ import annotations


def post_message(conn_id: str, channel: str, text: str, blocks: list[dict] | None = None,
                 thread_ts: str | None = None) -> dict:
    """Post and return ``{"channel": id, "ts": ts}``; raises ``SlackApiError`` when Slack refuses."""
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    from airflow.providers.slack.hooks.slack import SlackHook

    hook = SlackHook(
        slack_conn_id=conn_id,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=5),
            ConnectionErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=3),
        ],
    )
    response = hook.get_conn().chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts)
    return {"channel": response["channel"], "ts": response["ts"]}


async def apost_message(conn_id: str, channel: str, text: str, blocks: list[dict] | None = None,
                        thread_ts: str | None = None) -> dict:
    """The async twin of :func:`post_message`, for callbacks and triggers that run in the triggerer's event loop."""
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
        AsyncServerErrorRetryHandler,
    )
    from slack_sdk.web.async_client import AsyncWebClient

    from airflow.sdk import BaseHook

    conn = await BaseHook.aget_connection(conn_id)
    extra = conn.extra_dejson
    client = AsyncWebClient(
        token=conn.password,
        base_url=extra.get("base_url") or AsyncWebClient.BASE_URL,
        timeout=int(extra.get("timeout", 30)),
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncConnectionErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=3),
        ],
    )
    response = await client.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts)
    return {"channel": response["channel"], "ts": response["ts"]}
