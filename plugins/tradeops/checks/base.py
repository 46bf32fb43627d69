"""The check contract every TradeOps check follows: the health check's, the database's, the certificates', the
backup's, and every gate and watch to come.

A :class:`Check` *collects* (all the I/O: an API call, a query, a backup) and *evaluates* (pure: what was collected
against the config's thresholds) into one :class:`CheckResult`: a status, a one-line summary, the findings (each
with an id that stays the same from run to run, so a report can say what is new and what was fixed) and the action
it suggests. :class:`~tradeops.checks.operators.CheckOperator` runs one as a task, pushes the result and fails the
task through one exception; the severity of the incident a failed check opens comes only from
``incidents.check_severity``.

A failure is looked at twice before it counts (:meth:`Check.confirmed_look`): a check that fails, or cannot reach
what it checks, looks again after ``incidents.recheck_after`` (seconds, not the minutes of a task retry), so one
transient error (a 503, a dropped connection) fails nothing and pages nobody, while a real failure pages at once.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

if TYPE_CHECKING:
    from tradeops.config import TradeOpsConfig

RESULT_KEY = "check_result"  # the XCom key under which every check task leaves its CheckResult
T = TypeVar("T")
log = logging.getLogger("airflow.task.tradeops.checks")


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def emoji(self) -> str:
        return {"ok": ":large_green_circle:", "warn": ":large_yellow_circle:", "fail": ":red_circle:"}[self.value]


def worst(statuses: Iterable[Status]) -> Status:
    order = [Status.OK, Status.WARN, Status.FAIL]
    return max(statuses, key=order.index, default=Status.OK)


@dataclass(frozen=True)
class Finding:
    """One thing a check found. ``id`` names the thing (``agent:execution``, ``secret:trading/api-tls``), not the
    run, so the same problem has the same id tomorrow."""

    id: str
    status: Status
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    critical: bool = False  # a failure that needs the most urgent response (an expired certificate, cluster-admin)


@dataclass(frozen=True)
class CheckResult:
    name: str
    title: str
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    action: str = ""  # what a person should do about it, when it is not ok
    dependency: str | None = None  # the shared dependency the check reads through (platform_api, platform_db, ...)
    reachable: bool = True  # False: the dependency could not be read, so the check says nothing of its own

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["findings"] = [{**asdict(f), "status": f.status.value} for f in self.findings]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        findings = tuple(Finding(**{**f, "status": Status(f["status"])}) for f in data.get("findings", ()))
        return cls(**{**data, "status": Status(data["status"]), "findings": findings})

    @classmethod
    def missing(cls, name: str, title: str | None = None) -> CheckResult:
        """The result of a check task that ended before reporting (killed, crashed before its first line)."""
        return cls(name, title or name, Status.FAIL, "no result: the task ended before reporting (see its log)")


@dataclass(frozen=True)
class Look:
    """What one look at a check gave: its result and, when the check could not read what it checks, the error."""

    result: CheckResult
    error: Exception | None = None


class Check(ABC, Generic[T]):
    """One check: :meth:`collect` reads (I/O only), :meth:`evaluate` decides (pure, unit-tested on fixed data).

    Subclasses set ``name``, ``title`` and, optionally, the ``action`` suggested when the check is not ok and the
    ``dependency`` it reads through: when that cannot be reached, the incidents of every check behind it are held
    back under one incident for the dependency (as Alertmanager's inhibition rules do).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    action: ClassVar[str] = ""
    dependency: ClassVar[str | None] = None
    recheck: ClassVar[bool] = True  # False when collecting again is not a look but a second action (the backup)
    # False when a later look reads the same thing (certificates do not change in minutes): a failure it evaluated
    # is final for the task (no retry), while one that could not reach its dependency is still retried.
    retry_after_fail: ClassVar[bool] = True

    @abstractmethod
    def collect(self, config: TradeOpsConfig) -> T:
        """Read what the check needs from the platform (hooks, queries); no decision here."""

    @abstractmethod
    def evaluate(self, data: T, config: TradeOpsConfig) -> CheckResult:
        """Decide, from what :meth:`collect` read, against the config's thresholds; no I/O here."""

    def run(self, config: TradeOpsConfig) -> CheckResult:
        return self.evaluate(self.collect(config), config)

    def look(self, config: TradeOpsConfig) -> Look:
        """One look: :meth:`run`, or :meth:`unreachable` (a failed check) when it raises."""
        try:
            return Look(self.run(config))
        except Exception as err:
            log.warning("%s could not be checked", self.title, exc_info=True)
            return Look(self.unreachable(err), err)

    def confirmed_look(self, config: TradeOpsConfig, *, sleep: Callable[[float], None] = time.sleep) -> Look:
        """Look, and when the look fails, look again after ``incidents.recheck_after``: only a failure seen twice
        counts (the second look's result), so a single transient error passes. A result that passed on the second
        look says what the first one saw (``details["first_look"]``). Checks with ``recheck = False`` look once.

        :param sleep: waits the pause (injected by tests).
        """
        first = self.look(config)
        if first.result.status is not Status.FAIL or not self.recheck:
            return first
        pause = config.incidents.recheck_after.total_seconds()
        log.warning("%s failed its first look (%s); looking again in %g s", self.title, first.result.summary, pause)
        sleep(pause)
        second = self.look(config)
        if second.result.status is Status.FAIL:
            return second
        log.warning("%s passed on the second look: the first failure was transient", self.title)
        details = {**second.result.details, "first_look": first.result.summary}
        return replace(second, result=replace(second.result, details=details))

    def result(
        self,
        status: Status,
        summary: str,
        *,
        findings: Iterable[Finding] = (),
        action: str | None = None,
        **details: Any,
    ) -> CheckResult:
        """A result of this check; ``action`` defaults to the check's own when the status is not ok."""
        if action is None:
            action = "" if status is Status.OK else self.action
        return CheckResult(
            self.name, self.title, status, summary, details, tuple(findings), action, dependency=self.dependency
        )

    def unreachable(self, error: BaseException) -> CheckResult:
        """The result when the thing to check could not be read: a failed check, whose incident is held back under
        its dependency's when it has one."""
        failed = self.result(Status.FAIL, f"could not check: {type(error).__name__}: {error}"[:1500])
        return replace(failed, reachable=False)
