"""Webhook delivery to real HTTP receivers on loopback: signed notifications from the
durable outbox, retried as the receiver's answers ask, accepted once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import standardwebhooks

from vibewatch.alerts.notifier import Notifier
from vibewatch.alerts.outbox import Outbox, RetryPolicy, State
from vibewatch.config import Secret, WebhookReceiver
from vibewatch.state import open_state_db
from vibewatch.testing.webhooks import LocalReceiver, Reply

FAST = RetryPolicy(initial=0.05, maximum=0.2, budget=30.0)


def configured(
    name: str, local: LocalReceiver, secret: str, timeout: float = 2.0
) -> WebhookReceiver:
    return WebhookReceiver(name, local.url, (Secret(secret),), timeout, 2)


def outbox_of(tmp_path: Path) -> list[tuple[str, State, int]]:
    db = open_state_db(tmp_path / "state.db")
    try:
        return [(n.id, n.state, n.attempts) for n in Outbox(db).notifications()]
    finally:
        db.close()


def test_a_receiver_that_fails_five_times_gets_the_notification_once_with_one_id(
    tmp_path: Path, receiver: LocalReceiver, secret: str
) -> None:
    receiver.script([Reply(503)] * 4 + [Reply(429, headers={"Retry-After": "1"})])
    notifier = Notifier(
        receivers=[configured("oncall", receiver, secret)],
        state_db=tmp_path / "state.db",
        policy=FAST,
    )
    notifier.start()
    try:
        msg_id = notifier.notify("oncall", b'{"status":"firing"}')
        accepted = receiver.wait_accepted(1)
    finally:
        assert notifier.stop()
    assert list(accepted) == [msg_id]
    assert [r.status for r in receiver.requests] == [503, 503, 503, 503, 429, 200]
    assert {r.headers["webhook-id"] for r in receiver.requests} == {msg_id}
    assert receiver.requests[5].at - receiver.requests[4].at >= 1.0  # Retry-After: 1
    for request in receiver.requests:  # each attempt signed anew, verified independently
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    assert outbox_of(tmp_path) == [(msg_id, State.DELIVERED, 6)]


def test_a_hanging_receiver_is_cut_off_and_tried_again_a_400_is_not(
    tmp_path: Path, receiver: LocalReceiver, secret: str
) -> None:
    receiver.script([Reply(200, delay_s=3.0)])  # longer than the 1 s timeout
    notifier = Notifier(
        receivers=[configured("oncall", receiver, secret, timeout=1.0)],
        state_db=tmp_path / "state.db",
        policy=FAST,
    )
    notifier.start()
    try:
        slow = notifier.notify("oncall", b'{"n":1}')
        receiver.wait_accepted(1)
        receiver.script([Reply(400)])
        refused = notifier.notify("oncall", b'{"n":2}')
        deadline = time.monotonic() + 10
        while (refused, State.FAILED, 1) not in outbox_of(tmp_path):
            assert time.monotonic() < deadline, outbox_of(tmp_path)
            time.sleep(0.05)
        time.sleep(0.5)  # not tried again
        while len(receiver.requests) < 3:  # the hung attempt's answer, 3 s after it came
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        assert notifier.stop()
    # the hung attempt's answer came too late: the notification was sent again, and the
    # receiver (which deduplicates by webhook-id) took it once
    assert [r.headers["webhook-id"] for r in receiver.requests].count(slow) == 2
    assert list(receiver.accepted) == [slow]
    assert [r.headers["webhook-id"] for r in receiver.requests].count(refused) == 1
    rows = {row[0]: row for row in outbox_of(tmp_path)}
    assert rows[slow] == (slow, State.DELIVERED, 2)


def test_a_slow_receiver_does_not_delay_another(tmp_path: Path, secret: str) -> None:
    with LocalReceiver([secret]) as slow, LocalReceiver([secret]) as quick:
        slow.script([Reply(503, delay_s=1.5)] * 4)
        notifier = Notifier(
            receivers=[configured("slow", slow, secret), configured("quick", quick, secret)],
            state_db=tmp_path / "state.db",
            policy=FAST,
        )
        notifier.start()
        try:
            for n in range(4):
                notifier.notify("slow", f'{{"n":{n}}}'.encode())
            started = time.monotonic()
            for n in range(10):
                notifier.notify("quick", f'{{"n":{n}}}'.encode())
            quick.wait_accepted(10, timeout=5)
            assert time.monotonic() - started < 1.5  # while the slow one still hangs
            slow.wait_accepted(4, timeout=30)
        finally:
            assert notifier.stop()


def test_alerts_test_sends_a_signed_notification_and_prints_the_answer(
    tmp_path: Path, receiver: LocalReceiver, secret: str
) -> None:
    table = {"oncall": {"url": receiver.url, "secrets": [secret], "timeout": 2}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")} | {
        "VIBEWATCH_DATA_HOME": str(tmp_path / "home"),
        "VIBEWATCH_ALERTS_RECEIVERS": json.dumps(table),
    }

    def alerts(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "vibewatch", "alerts", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    done = alerts("test", "oncall", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["status"] == 200 and shown["accepted"] is True and shown["answer"] == "ok"
    (request,) = receiver.requests
    body = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    assert body["version"] == "4" and body["alerts"][0]["labels"]["alertname"]
    receiver.script([Reply(500)])
    failed = alerts("test", "oncall")
    assert failed.returncode == 1 and "oncall answered 500" in failed.stdout
    unknown = alerts("test", "pager")
    assert unknown.returncode == 2 and "no receiver 'pager' (receivers: oncall)" in unknown.stderr
    assert secret not in failed.stdout + failed.stderr + unknown.stderr
