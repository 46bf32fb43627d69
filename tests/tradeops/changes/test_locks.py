"""Deployment leases on the real PostgreSQL: contention names the holder, the same holder renews, an expired lease
is taken over, all or nothing, release; and concurrent acquirers of overlapping sets never both win."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from tradeops.changes.locks import DeploymentsBusy

HOUR = timedelta(hours=1)


def holders(locks, namespace) -> dict[str, str]:
    return {lease.deployment: lease.holder for lease in locks.held(namespace)}


def test_a_second_holder_is_refused_with_a_message_naming_the_first(locks, namespace):
    locks.acquire(namespace, ["api", "engine"], "emergency_rollback/run-1", HOUR)

    with pytest.raises(DeploymentsBusy) as busy:
        locks.acquire(namespace, ["engine"], "blue_green_deploy/run-9", HOUR)

    assert busy.value.holders == ["emergency_rollback/run-1"]
    assert f"{namespace}/engine is held by emergency_rollback/run-1 since" in str(busy.value)
    assert "expires" in str(busy.value)
    assert holders(locks, namespace) == {"api": "emergency_rollback/run-1", "engine": "emergency_rollback/run-1"}


def test_the_same_holder_acquiring_again_renews_and_keeps_since(locks, namespace):
    locks.acquire(namespace, ["api"], "dag/run-1", timedelta(seconds=30))
    [first] = locks.held(namespace)

    locks.acquire(namespace, ["api"], "dag/run-1", HOUR)

    [renewed] = locks.held(namespace)
    assert renewed.holder == "dag/run-1"
    assert renewed.acquired_at == first.acquired_at
    assert renewed.expires_at - first.expires_at > timedelta(minutes=59)


def test_an_expired_lease_of_a_crashed_run_is_taken_over(locks, namespace):
    locks.acquire(namespace, ["api"], "dag/crashed", timedelta(seconds=-1))  # already past its expiry

    locks.acquire(namespace, ["api"], "dag/next", HOUR)

    assert holders(locks, namespace) == {"api": "dag/next"}


def test_acquiring_is_all_or_nothing(locks, namespace):
    locks.acquire(namespace, ["engine"], "dag/holder", HOUR)

    with pytest.raises(DeploymentsBusy):
        locks.acquire(namespace, ["api", "engine", "risk"], "dag/other", HOUR)

    assert holders(locks, namespace) == {"engine": "dag/holder"}, "api and risk were not taken either"


def test_release_gives_back_only_the_holders_leases(locks, namespace):
    locks.acquire(namespace, ["api", "engine"], "dag/one", HOUR)
    locks.acquire(namespace, ["risk"], "dag/two", HOUR)

    assert locks.release("dag/one") == 2
    assert locks.release("dag/one") == 0, "releasing again is harmless"

    assert holders(locks, namespace) == {"risk": "dag/two"}
    locks.acquire(namespace, ["api"], "dag/three", HOUR)


def test_concurrent_acquirers_of_overlapping_sets_never_both_win(locks, namespace):
    barrier = threading.Barrier(8)
    won: list[str] = []

    def take(i: int) -> None:
        barrier.wait()
        try:
            locks.acquire(namespace, ["api", "engine"] if i % 2 else ["engine", "risk"], f"dag/run-{i}", HOUR)
            won.append(f"dag/run-{i}")
        except DeploymentsBusy:
            pass

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(won) == 1
    assert set(holders(locks, namespace).values()) == set(won)
