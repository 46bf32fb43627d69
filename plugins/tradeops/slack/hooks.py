"""Slack's Web API through the provider's ``SlackHook``, with slack_sdk's retry handlers preconfigured.

Rate limits (HTTP 429) are retried after Slack's ``Retry-After``; connection and server errors are retried too.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.slack.hooks.slack import SlackHook


def _retry_handlers() -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    return [
        RateLimitErrorRetryHandler(max_retry_count=5),
        ConnectionErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=3),
    ]


class TradeOpsSlackHook(SlackHook):
    """The Web API calls TradeOps makes (post, update, create a channel), on one Slack API connection.

    :param slack_conn_id: the Slack API connection (the bot token in its password).
    :param retry_handlers: slack_sdk retry handlers; by default rate limits (5 times, after ``Retry-After``),
        connection errors and server errors (3 times each).
    """

    def __init__(
        self,
        *,
        slack_conn_id: str = SlackHook.default_conn_name,
        retry_handlers: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            slack_conn_id=slack_conn_id,
            retry_handlers=_retry_handlers() if retry_handlers is None else retry_handlers,
            **kwargs,
        )

    def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None, thread_ts: str | None = None
    ) -> dict[str, str]:
        """Post and return ``{"channel": id, "ts": ts}``; raises ``SlackApiError`` when Slack refuses."""
        response = self.client.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts)
        return {"channel": response["channel"], "ts": response["ts"]}

    def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)

    def create_channel(self, name: str) -> str:
        """Create a channel (or find it, when it already exists); returns its name with a ``#``."""
        from slack_sdk.errors import SlackApiError

        try:
            self.client.conversations_create(name=name)
        except SlackApiError as err:
            if err.response.get("error") != "name_taken":
                raise
        return f"#{name}"
