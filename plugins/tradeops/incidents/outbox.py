"""The Slack outbox: deliver what the engine and the incident operations queued in ``tradeops.outbox``.

A message that cannot be delivered is kept and retried with backoff, never dropped; a thread reply waits for its
incident's first message. Messages are taken with ``FOR UPDATE SKIP LOCKED``, so several deliverers at once (the
opener of an incident, two overlapping engine windows, a restarted triggerer) never send one twice. Every delivery
and every failure is recorded in the incident's audit trail. Messages of no incident (a run's summary, queued once per
dedup key) go out the same way.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from tradeops.incidents import store
from tradeops.incidents.models import EventKind, OutboxKind, OutboxMessage

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig
    from tradeops.slack.hooks import TradeOpsSlackHook

log = logging.getLogger("airflow.task.tradeops.incidents")
MAX_RETRY_DELAY = timedelta(minutes=5)


class SlackOutbox:
    """Delivers the outbox of the state database ``dsn`` on the config's Slack API connection."""

    def __init__(self, config: TradeOpsConfig, dsn: str):
        self.config = config
        self.dsn = dsn

    @cached_property
    def slack(self) -> TradeOpsSlackHook:
        from tradeops.slack.hooks import TradeOpsSlackHook

        return TradeOpsSlackHook(slack_conn_id=self.config.connections.slack_api)

    def deliver(self, limit: int = 50) -> int:
        """Send what the outbox holds, oldest first; a failure is kept for a later attempt with backoff. Returns
        how many messages were sent."""
        from slack_sdk.errors import SlackApiError

        sent = 0
        with store.connect(self.dsn) as conn, conn.transaction():
            waiting_for_root: set[int] = set()
            for message in store.pending_messages(conn, limit):
                if message.incident_id is not None and (
                    message.in_thread and not message.root_ts or message.incident_id in waiting_for_root
                ):
                    waiting_for_root.add(message.incident_id)
                    continue  # the first message must go out first
                try:
                    posted = self._send(conn, message)
                except (SlackApiError, OSError) as err:
                    reason = getattr(getattr(err, "response", None), "get", lambda *_: None)("error") or str(err)
                    delay = min(timedelta(seconds=2 ** min(message.attempts, 8)), MAX_RETRY_DELAY)
                    store.mark_failed(conn, message.id, reason[:500], delay)
                    if message.incident_id is not None:
                        store.event(
                            conn,
                            message.incident_id,
                            EventKind.DELIVERY_FAILED,
                            level=message.level,
                            detail={
                                "kind": message.kind.value,
                                "channel": message.channel,
                                "error": reason[:500],
                                "attempt": message.attempts + 1,
                                "retry_in_s": delay.total_seconds(),
                            },
                        )
                    log.warning("Slack delivery of outbox %s failed (%s); retrying in %s", message.id, reason, delay)
                    if message.kind is OutboxKind.PAGE and message.incident_id is not None:
                        waiting_for_root.add(message.incident_id)
                    continue
                store.mark_delivered(conn, message.id, posted.get("ts"))
                if message.incident_id is not None and message.kind is not OutboxKind.UPDATE_ROOT:
                    store.event(
                        conn,
                        message.incident_id,
                        EventKind.NOTIFIED,
                        level=message.level,
                        detail={"kind": message.kind.value},
                        slack_channel=posted.get("channel_name"),
                        slack_ts=posted.get("ts"),
                    )
                sent += 1
        return sent

    def _send(self, conn: store.Connection, message: OutboxMessage) -> dict[str, str | None]:
        if message.kind is OutboxKind.UPDATE_ROOT:
            assert message.root_channel and message.root_ts  # delivered after the page, which set them
            self.slack.update(message.root_channel, message.root_ts, message.text, message.blocks)
            return {"ts": message.root_ts, "channel_name": message.root_channel_name}
        if message.in_thread:
            assert message.root_channel  # with root_ts: a thread reply waits for its page
            posted = self.slack.post(message.root_channel, message.text, message.blocks, thread_ts=message.root_ts)
            return {**posted, "channel_name": message.root_channel_name}
        channel = message.channel
        if message.kind is OutboxKind.WAR_ROOM and message.incident_id is not None:
            channel = self.slack.create_channel(channel)
            store.update_fields(conn, message.incident_id, war_room=channel)
        posted = self.slack.post(channel, message.text, message.blocks)
        if message.kind is OutboxKind.PAGE and message.incident_id is not None:
            # The first message is the incident's thread: everything after it replies there.
            store.update_fields(conn, message.incident_id, slack_channel=posted["channel"], slack_ts=posted["ts"])
        return {**posted, "channel_name": channel}
