"""How fast incidents are acknowledged and resolved, per severity and per week: the mean and median time to
acknowledge (MTTA, ``acknowledged_at - opened_at``, over the incidents that were acknowledged) and to resolve (MTTR,
``resolved_at - opened_at``, over those resolved) of the incidents opened in each of the last eight ISO weeks (UTC),
with how many each figure covers. One query groups them; the incidents page and
``/tradeops/incidents/response-times.json`` show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from tradeops.incidents.models import SEVERITY_ORDER
from tradeops.incidents.store import Connection

WEEKS = 8

QUERY = """
SELECT severity, week,
       count(*) AS opened,
       count(to_acknowledge) AS acknowledged,
       avg(to_acknowledge) AS mtta,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY to_acknowledge) AS mtta_median,
       count(to_resolve) AS resolved,
       avg(to_resolve) AS mttr,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY to_resolve) AS mttr_median
  FROM (SELECT severity,
               date_trunc('week', opened_at AT TIME ZONE 'UTC')::date AS week,
               extract(epoch FROM acknowledged_at - opened_at)::float8 AS to_acknowledge,
               extract(epoch FROM resolved_at - opened_at)::float8 AS to_resolve
          FROM tradeops.incidents
         WHERE opened_at >= %(start)s AND opened_at < %(end)s) AS timed
 GROUP BY severity, week
"""


@dataclass(frozen=True)
class ResponseTime:
    """The incidents of one severity opened in one week (``week``: its Monday). Times are in seconds; the MTTA
    figures are None when none of them was acknowledged, the MTTR ones when none was resolved."""

    severity: str
    week: date
    opened: int
    acknowledged: int
    mtta: float | None
    mtta_median: float | None
    resolved: int
    mttr: float | None
    mttr_median: float | None


@dataclass(frozen=True)
class ResponseTimes:
    """What the page's table shows: the weeks, and the figures of each severity and week that had incidents."""

    weeks: list[date]  # the Mondays, oldest first
    cells: list[ResponseTime]  # only the severities and weeks that had incidents

    def by_severity(self) -> list[tuple[str, list[ResponseTime | None]]]:
        """One row per severity, most severe first, with its cell of each week (None: no incident opened)."""
        found = {(cell.severity, cell.week): cell for cell in self.cells}
        return [(severity, [found.get((severity, week)) for week in self.weeks]) for severity in SEVERITY_ORDER]


def weeks_up_to(now: datetime) -> list[date]:
    """The Mondays of the last :data:`WEEKS` ISO weeks (UTC), ``now``'s the last."""
    today = now.astimezone(UTC).date()
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=back) for back in reversed(range(WEEKS))]


def weekly(conn: Connection, now: datetime) -> ResponseTimes:
    """The response times of the incidents opened in the last :data:`WEEKS` weeks, ``now``'s included."""
    weeks = weeks_up_to(now)
    start = datetime.combine(weeks[0], time(), UTC)
    end = datetime.combine(weeks[-1] + timedelta(weeks=1), time(), UTC)
    rows = conn.execute(QUERY, {"start": start, "end": end}).fetchall()
    return ResponseTimes(weeks, [ResponseTime(**row) for row in rows])


def readable_duration(seconds: float) -> str:
    """A duration for people: seconds under a minute (``45s``), minutes under an hour (``12m``), then hours and
    minutes (``3h 5m``), then days and hours (``2d 4h``); a zero second part is left out (``3h``)."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
