"""The outbox's rules (which answers deliver, fail or retry; when to try again) and its
store (claims, records), on a state database of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibewatch.alerts.outbox import Outbox, RetryPolicy, State, outcome
from vibewatch.state import open_state_db


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (200, State.DELIVERED),
        (204, State.DELIVERED),
        (400, State.FAILED),
        (401, State.FAILED),
        (404, State.FAILED),
        (408, State.PENDING),
        (429, State.PENDING),
        (500, State.PENDING),
        (503, State.PENDING),
        (None, State.PENDING),  # a timeout or connection error
        (301, State.PENDING),  # a redirect is not followed: tried again, then dead
    ],
)
def test_which_answers_deliver_fail_or_retry(status: int | None, state: State) -> None:
    assert outcome(status) is state


def test_retries_back_off_honour_retry_after_and_end_with_the_budget() -> None:
    policy = RetryPolicy(initial=1.0, maximum=60.0, budget=3600.0)
    delays = [policy.next_try(n, 0.0, 0.0) for n in range(1, 12)]
    assert all(d is not None for d in delays)
    assert 0.5 <= delays[0] <= 1.0 and 30.0 <= delays[-1] <= 60.0  # type: ignore[operator]
    assert policy.next_try(1, 0.0, 0.0, retry_after=120.0) == 120.0
    assert policy.next_try(1, 0.0, 0.0, retry_after=10_000.0) is None  # past the budget
    assert policy.next_try(1, 0.0, 3599.9) is None
    capped = RetryPolicy(budget=86_400.0).next_try(1, 0.0, 0.0, retry_after=1e9)
    assert capped == 3600.0  # a Retry-After of more than an hour is taken as one


def test_a_claimed_notification_is_nobody_elses_until_its_lease_ends(tmp_path: Path) -> None:
    db = open_state_db(tmp_path / "state.db")
    outbox = Outbox(db)
    first = outbox.add("oncall", b'{"n":1}', 100.0)
    second = outbox.add("oncall", b'{"n":2}', 101.0)
    outbox.add("tickets", b'{"n":3}', 100.0)
    assert first.startswith("msg_") and first != second
    claimed = outbox.claim("oncall", 102.0, lease_s=15.0)
    assert claimed is not None and claimed.id == first and claimed.body == b'{"n":1}'
    other = outbox.claim("oncall", 102.0, lease_s=15.0)
    assert other is not None and other.id == second
    assert outbox.claim("oncall", 102.0, lease_s=15.0) is None
    assert outbox.next_due("oncall") == 117.0
    again = outbox.claim("oncall", 117.0, lease_s=15.0)  # its sender died: taken again
    assert again is not None and again.id == first
    outbox.record(again, state=State.PENDING, status=503, error="busy", now_s=118.0, next_s=120.0)
    outbox.record(other, state=State.FAILED, status=400, error="bad request", now_s=118.0)
    shown = {n.id: n for n in outbox.notifications(receiver="oncall")}
    assert shown[first].state is State.PENDING and shown[first].attempts == 1
    assert shown[first].last_status == 503 and shown[first].next_s == 120.0
    assert shown[second].state is State.FAILED and shown[second].done_s == 118.0
    assert [n.id for n in outbox.notifications(state=State.FAILED)] == [second]
    db.close()
