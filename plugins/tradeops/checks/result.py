"""The outcome of one check, as every check, report and Slack message shares it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

RESULT_KEY = "check_result"  # the XCom key under which every check task leaves its CheckResult


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @property
    def emoji(self) -> str:
        return {"ok": ":large_green_circle:", "warn": ":large_yellow_circle:", "fail": ":red_circle:"}[self.value]


@dataclass(frozen=True)
class CheckResult:
    name: str
    title: str
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(**{**data, "status": Status(data["status"])})


def worst(statuses) -> Status:
    order = [Status.OK, Status.WARN, Status.FAIL]
    return max(statuses, key=order.index, default=Status.OK)
