"""Slack through the provider's ``SlackHook`` (Web API), with slack_sdk's retry handlers.

Rate limits (HTTP 429) are retried after Slack's ``Retry-After``; connection and server errors are retried too.
"""

from __future__ import annotations


class SlackClient:
    """The Web API calls TradeOps makes, on one connection."""

    def __init__(self, conn_id: str):
        from slack_sdk.http_retry.builtin_handlers import (
            ConnectionErrorRetryHandler,
            RateLimitErrorRetryHandler,
            ServerErrorRetryHandler,
        )

        from airflow.providers.slack.hooks.slack import SlackHook

        self.web = SlackHook(
            slack_conn_id=conn_id,
            retry_handlers=[
                RateLimitErrorRetryHandler(max_retry_count=5),
                ConnectionErrorRetryHandler(max_retry_count=3),
                ServerErrorRetryHandler(max_retry_count=3),
            ],
        ).get_conn()

    def post(self, channel: str, text: str, blocks: list[dict] | None = None, thread_ts: str | None = None) -> dict:
        """Post and return ``{"channel": id, "ts": ts}``; raises ``SlackApiError`` when Slack refuses."""
        response = self.web.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts)
        return {"channel": response["channel"], "ts": response["ts"]}

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None:
        self.web.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    def create_channel(self, name: str) -> str:
        """Create a channel (or find it, when it already exists); returns its name with a ``#``."""
        from slack_sdk.errors import SlackApiError

        try:
            self.web.conversations_create(name=name)
        except SlackApiError as err:
            if err.response.get("error") != "name_taken":
                raise
        return f"#{name}"


def post_message(conn_id: str, channel: str, text: str, blocks: list[dict] | None = None,
                 thread_ts: str | None = None) -> dict:
    """Post once with a fresh client (see :class:`SlackClient`)."""
    return SlackClient(conn_id).post(channel, text, blocks, thread_ts)
