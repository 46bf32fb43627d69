"""The trading day's record: the session's trading report, its log archive, the metrics kept per session in the
state database (``tradeops.daily_metrics``) and the end-of-day report to Slack. What the day means as data (the
session a run closes out, the message) is in :mod:`tradeops.daily.report`; the SQL in :mod:`tradeops.daily.store`."""
