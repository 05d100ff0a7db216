"""``vibewatch alerts …``: webhook receivers and the deliveries of the outbox.

Exit codes: 0 success; 1 a failure (the receiver did not accept the test notification,
the state database cannot be used); 2 bad input (an unknown receiver or state).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from vibewatch.cliutil import App, ConfigOption, JsonOption, duration, fail, load, state_db

__all__ = ["alerts_app"]

alerts_app = App(help="Alerts and their signed webhook notifications.")


def _test_body(receiver: str) -> bytes:
    """A notification in Alertmanager's webhook format, marked as a test."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    labels = {"alertname": "VibewatchWebhookTest", "severity": "none"}
    alert = {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": "A test notification from `vibewatch alerts test`."},
        "startsAt": now,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "",
        "fingerprint": "",
    }
    body = {
        "receiver": receiver,
        "status": "firing",
        "alerts": [alert],
        "groupLabels": {},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    }
    return json.dumps(body, separators=(",", ":")).encode()


@alerts_app.command("test")
def alerts_test(
    receiver: Annotated[str, typer.Argument(help="Receiver name ([alerts.receivers]).")],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Send a signed test notification to a receiver and print its answer (exit 1 unless
    it accepted it with a 2xx)."""
    import secrets

    from vibewatch.alerts.notifier import post

    cfg = load(config)
    known = {r.name: r for r in cfg.alerts.receivers}
    if receiver not in known:
        names = ", ".join(known) or "none configured"
        fail(f"no receiver {receiver!r} (receivers: {names})", 2)
    msg_id = "msg_test_" + secrets.token_urlsafe(12)
    answer = post(known[receiver], msg_id, _test_body(receiver))
    accepted = answer.status is not None and 200 <= answer.status < 300
    if as_json:
        shown = {
            "receiver": receiver,
            "id": msg_id,
            "status": answer.status,
            "answer": answer.text,
            "seconds": round(answer.seconds, 3),
            "accepted": accepted,
        }
        typer.echo(json.dumps(shown))
    else:
        said = f"answered {answer.status}" if answer.status is not None else "did not answer"
        text = f": {answer.text}" if answer.text else ""
        typer.echo(f"{receiver} {said} in {answer.seconds:.2f}s{text}")
    if not accepted:
        raise typer.Exit(1)


@alerts_app.command("deliveries")
def alerts_deliveries(
    receiver: Annotated[
        str | None, typer.Option("--receiver", help="Only this receiver's.", show_default=False)
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state", help="Only pending, delivered, failed or dead ones.", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 50,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The notifications of the outbox, newest first: state, attempts, the receiver's
    last answer."""
    from vibewatch.alerts.outbox import Outbox, State

    try:
        wanted = None if state is None else State(state)
    except ValueError:
        fail(f"--state must be pending, delivered, failed or dead, not {state!r}", 2)
    with state_db(config) as db:
        notes = Outbox(db).notifications(receiver=receiver, state=wanted, limit=limit)
    rows: list[dict[str, Any]] = [
        {
            "id": n.id,
            "receiver": n.receiver,
            "state": n.state.value,
            "attempts": n.attempts,
            "created": _when(n.created_s),
            "next": _when(n.next_s) if n.state.value == "pending" else None,
            "done": _when(n.done_s) if n.done_s is not None else None,
            "last_status": n.last_status,
            "last_error": n.last_error,
        }
        for n in notes
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        answer = row["last_status"] or row["last_error"] or "-"
        typer.echo(
            f"{row['id']:<28} {row['receiver']:<16} {row['state']:<9} "
            f"{row['attempts']:>3} attempts  {row['created']}  {answer}"
        )


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


@alerts_app.command("list")
def alerts_list(
    every: Annotated[
        bool, typer.Option("--all", help="Also the alerts that resolved (kept a week).")
    ] = False,
    matchers: Annotated[
        list[str] | None,
        typer.Option(
            "--matcher",
            metavar="MATCHER",
            help='Only the alerts that match, e.g. device="pump-01"; repeatable.',
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The alerts that fire (with --all, also those that resolved), newest first, as the
    alerts service last saved them, with the silence in force that mutes each."""
    from vibewatch.alerts.dispatch import parse_matcher
    from vibewatch.alerts.model import format_time
    from vibewatch.alerts.silences import SilenceStore
    from vibewatch.alerts.store import AlertStore

    try:
        wanted = [parse_matcher(text) for text in matchers or ()]
    except ValueError as exc:
        fail(f"--matcher {exc}", 2)
    with state_db(config) as db:
        saved = AlertStore(db).alerts(firing_only=not every)
        silences = SilenceStore(db).silences(active_at=time.time())
    rows: list[dict[str, Any]] = []
    for item in saved:
        alert = item.alert
        if not all(m.matches(alert.labels) for m in wanted):
            continue
        muting = [s.id for s in silences if s.mutes(alert.labels)]
        rows.append(
            {
                "fingerprint": alert.fingerprint,
                "status": "firing" if alert.firing else "resolved",
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
                "starts": format_time(alert.starts_at_ns),
                "ends": None if alert.ends_at_ns is None else format_time(alert.ends_at_ns),
                "silenced_by": muting,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        labels = {k: v for k, v in row["labels"].items() if k != "alertname"}
        shown = ", ".join(f"{k}={v}" for k, v in labels.items())
        muted = f"  silenced by {', '.join(row['silenced_by'])}" if row["silenced_by"] else ""
        typer.echo(
            f"{row['status']:<8} {row['labels'].get('alertname', '?'):<22} {shown}  "
            f"since {row['starts']}{muted}"
        )
        summary = row["annotations"].get("summary")
        if summary:
            typer.echo(f"         {summary}")
    if not rows:
        typer.echo("no alerts" if every else "no alerts fire")


@alerts_app.command("rules")
def alerts_rules(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """The alert rules in force: the defaults as [alerts.rules] changed them."""
    cfg = load(config)
    rules = {rule.name: rule.as_json() for rule in cfg.alerts.rules}
    if as_json:
        typer.echo(json.dumps(rules))
        return
    for name, rule in rules.items():
        params = ", ".join(f"{k}={v:g}" for k, v in rule.items() if isinstance(v, int | float))
        labels = ", ".join(f"{k}={v}" for k, v in rule["labels"].items())
        inhibited = rule["inhibited_by"]
        typer.echo(
            f"{name:<22} {rule['kind']:<16} {params or '-'}  labels: {labels or '-'}"
            + (f"  inhibited by {', '.join(inhibited)}" if inhibited else "")
        )


@alerts_app.command("serve")
def alerts_serve(config: ConfigOption = None) -> None:
    """Run the alerts service alone (`vibewatch serve` runs it with the other services):
    the devices' events and status in, signed webhooks out.

    SIGTERM or Ctrl-C stops it; notifications not yet delivered go out at the next start.
    """
    from vibewatch.logs import setup_logging
    from vibewatch.serve import build_services, run_services

    cfg = load(config)
    setup_logging(cfg.log.level, cfg.log.format)
    raise typer.Exit(run_services(build_services(cfg, ["alerts"])))


@alerts_app.command("silence")
def alerts_silence(
    matchers: Annotated[
        list[str],
        typer.Option(
            "--matcher",
            help="What to silence: name=value, name!=value, name=~regex or name!~regex, e.g. "
            'device="pump-01"; repeatable (an alert must match all).',
            show_default=False,
        ),
    ],
    for_: Annotated[
        str, typer.Option("--duration", help="How long, e.g. 90m, 2h or 1d.", show_default=False)
    ],
    comment: Annotated[str, typer.Option("--comment", help="Why, for the record.")],
    by: Annotated[str, typer.Option("--by", help="Who.")] = os.environ.get("USER", ""),
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Silence the alerts that match every matcher for a while: the alerts service does
    not notify them (it reads new silences within a second)."""
    from vibewatch.alerts.dispatch import parse_matcher
    from vibewatch.alerts.silences import SilenceError, SilenceStore

    seconds = duration(for_, "--duration")
    try:
        parsed = [parse_matcher(text) for text in matchers]
    except ValueError as exc:
        fail(f"--matcher {exc}", 2)
    with state_db(config) as db:
        try:
            silence = SilenceStore(db).add(parsed, seconds, comment, by, time.time())
        except SilenceError as exc:
            fail(str(exc), 2)
    if as_json:
        typer.echo(json.dumps(_silence_json(silence)))
    else:
        typer.echo(
            f"{silence.id}: silenced {_matchers_text(silence)} until {_when(silence.ends_s)}"
        )


@alerts_app.command("silences")
def alerts_silences(
    every: Annotated[bool, typer.Option("--all", help="Also those that ended.")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The silences in force (with --all, also those that ended), newest first."""
    from vibewatch.alerts.silences import SilenceStore

    with state_db(config) as db:
        shown = SilenceStore(db).silences(active_at=None if every else time.time())
    if as_json:
        typer.echo(json.dumps([_silence_json(s) for s in shown]))
        return
    for s in shown:
        typer.echo(
            f"{s.id}  {_matchers_text(s)}  {_when(s.starts_s)} .. {_when(s.ends_s)}  "
            f"{s.created_by or '-'}: {s.comment}"
        )


@alerts_app.command("expire")
def alerts_expire(
    silence_id: Annotated[str, typer.Argument(help="Silence id (sil_...).", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """End a silence now."""
    from vibewatch.alerts.silences import SilenceError, SilenceStore

    with state_db(config) as db:
        try:
            SilenceStore(db).expire(silence_id, time.time())
        except SilenceError as exc:
            fail(str(exc), 2)
    typer.echo(f"{silence_id}: expired")


def _matchers_text(silence: Any) -> str:
    return "{" + ", ".join(str(m) for m in silence.matchers) + "}"


def _silence_json(silence: Any) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": [str(m) for m in silence.matchers],
        "starts": _when(silence.starts_s),
        "ends": _when(silence.ends_s),
        "comment": silence.comment,
        "created_by": silence.created_by,
    }
