"""``vibewatch ota …`` (rollouts) and ``vibewatch devices …`` (what the devices said of
themselves, and their broker credentials: :mod:`vibewatch.access`).

``ota deploy`` checks a rollout and saves it; the controller (``vibewatch serve``, or
``vibewatch ota serve`` alone) carries it out. ``pause``, ``resume``, ``abort`` and
``rollback`` queue a command the controller carries out within a second.

Exit codes: 0 success; 1 a failure (the state database cannot be used, a registered
package fails verification); 2 bad input (an unknown model, version, device, group or
rollout, a bad wave or rate, targets that cannot run the model, a version not above
what a target runs, a rollback without its signed statement).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from vibewatch.cliutil import (
    App,
    ConfigOption,
    JsonOption,
    ProgressLine,
    duration,
    exits,
    fail,
    load,
    state_db,
)

__all__ = ["devices_app", "ota_app"]

ota_app = App(help="Over-the-air model rollouts: canary first, then waves; abort on trouble.")
devices_app = App(
    help="The devices: what their status messages say, their labels, their broker credentials."
)

RolloutArgument = Annotated[str, typer.Argument(help="Rollout id (rollout-N).", show_default=False)]


def _share(text: str, what: str) -> float:
    value = text.strip()
    try:
        share = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        fail(f"{what} must be a share like 5% or 0.05, not {text!r}", 2)
    return share


@contextmanager
def _store(config: Any) -> Iterator[Any]:
    from vibewatch.ota.store import RolloutStore

    with state_db(config) as db:
        yield RolloutStore(db)


@ota_app.command("deploy")
def ota_deploy(
    model_id: Annotated[str, typer.Argument(help="Model id.", show_default=False)],
    version: Annotated[int, typer.Argument(min=1, help="The version to install.")],
    devices: Annotated[
        str | None,
        typer.Option("--devices", help="Target devices, comma separated.", show_default=False),
    ] = None,
    groups: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            help="Target a group: a name of [ota] groups in the configuration, or a label "
            "selector KEY=VALUE (`vibewatch devices label`); repeatable.",
            show_default=False,
        ),
    ] = None,
    all_devices: Annotated[
        bool, typer.Option("--all", help="Every device that ever sent its status.")
    ] = False,
    canary: Annotated[int, typer.Option("--canary", min=1, help="Devices in the first wave.")] = 1,
    waves: Annotated[
        str,
        typer.Option(
            "--waves", help="After the canaries, the share of the targets each wave reaches."
        ),
    ] = "10%,50%,100%",
    max_failure_rate: Annotated[
        str, typer.Option("--max-failure-rate", help="Failures that abort the rollout.")
    ] = "5%",
    timeout: Annotated[
        str, typer.Option("--timeout", help="Time a device has from its job to an outcome.")
    ] = "15m",
    trial: Annotated[
        str,
        typer.Option(
            "--trial",
            help="How long a device is watched on the new model before its wave counts as "
            "done (the regression guard's span); 0: until the device confirms it.",
        ),
    ] = "0",
    guard_factor: Annotated[
        float,
        typer.Option(
            "--guard-factor",
            min=0.0,
            help="Abort when the devices on the new model raise more than this many times "
            "the anomaly events they raised on the old one over the same span; 0: off.",
        ),
    ] = 3.0,
    guard_min_events: Annotated[
        int,
        typer.Option(
            "--guard-min-events", min=1, help="Fewest events on the new model that can abort."
        ),
    ] = 3,
    rollback: Annotated[
        bool,
        typer.Option(
            "--rollback",
            help="Install a version below what targets run, under its signed rollback "
            "statement (`vibewatch models sign-rollback`).",
        ),
    ] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Create a rollout of a registered model version; `vibewatch serve` carries it out.

    Refused, with the reason, for a package that fails verification, unknown devices or
    groups, targets whose status says they cannot run the model (sample rate, window,
    flash, engine memory), a version not above what a target runs (without --rollback),
    a rollback without its signed statement.
    """
    from vibewatch.errors import RegistryError
    from vibewatch.models.keys import load_public_key
    from vibewatch.models.registry import Registry
    from vibewatch.ota.rollout import RolloutPlan
    from vibewatch.ota.targets import TargetError, fit_problems, select_targets, version_problems

    named = [d.strip() for d in (devices or "").split(",") if d.strip()]
    if not (named or groups or all_devices):
        fail("give the targets: --devices A,B,..., --group NAME or --all", 2)
    cfg = load(config)
    plan_waves = tuple(_share(w, "--waves") for w in waves.split(","))
    with _store(config) as store:
        known = store.devices()
        try:
            targets = select_targets(
                known,
                devices=named,
                groups=groups or (),
                all_devices=all_devices,
                config_groups=dict(cfg.ota.groups),
            )
        except TargetError as exc:
            fail(str(exc), 2)
        chosen = [d for d in known if d.device in set(targets)]
        problems = version_problems(model_id, version, chosen, rollback=rollback)
        plan = RolloutPlan(
            model_id=model_id,
            version=version,
            targets=targets,
            canary=canary,
            waves=plan_waves,
            max_failure_rate=_share(max_failure_rate, "--max-failure-rate"),
            timeout_s=duration(timeout, "--timeout"),
            trial_s=duration(trial, "--trial"),
            guard_factor=guard_factor,
            guard_min_events=guard_min_events,
            rollback=rollback,
        )
        problems += plan.problems()
        if problems:
            fail("; ".join(problems), 2)
        try:
            key = load_public_key(cfg.train.verify_key)
            with Registry(cfg.train.registry_dir, cfg.state_db, key) as registry:
                package = registry.load(model_id, version)
                if rollback and registry.rollback_statement(model_id, version) is None:
                    fail(
                        f"no signed rollback statement of {model_id} version {version}: "
                        f"`vibewatch models sign-rollback {model_id} {version}` makes it "
                        "where the signing key is",
                        2,
                    )
        except RegistryError as exc:
            fail(str(exc), 2 if "not registered" in str(exc) else 1)
        unfit = fit_problems(package.manifest, chosen)
        if unfit:
            fail(f"targets cannot run {model_id} version {version}: {'; '.join(unfit)}", 2)
        rollout = store.create(plan)
    if as_json:
        typer.echo(json.dumps(_rollout_json(rollout), indent=2))
    else:
        sizes = " + ".join(str(len(w)) for w in plan.wave_members())
        kind = "rollback to" if rollback else "rollout of"
        typer.echo(
            f"{rollout.rollout_id}: {kind} {model_id} version {version} to {len(targets)} "
            f"devices in waves of {sizes}; `vibewatch ota status {rollout.rollout_id} --watch`"
        )


def _rollout_json(rollout: Any) -> dict[str, Any]:
    return {
        "rollout": rollout.rollout_id,
        "job": rollout.job_id,
        "model_id": rollout.plan.model_id,
        "version": rollout.plan.version,
        "phase": rollout.phase.value,
        "reason": rollout.reason,
        "wave": rollout.wave + 1,  # 1 the canaries, 0 before the start
        "waves": rollout.waves,
        "converged": rollout.converged,
        "counts": rollout.counts(),
        "wave_counts": rollout.wave_counts(),
        "devices": {device: _device_part(rollout, device) for device in rollout.devices},
    }


def _status_lines(rollout: Any) -> list[str]:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(rollout.counts().items()))
    head = (
        f"{rollout.rollout_id}  {rollout.plan.model_id} v{rollout.plan.version}  "
        f"{rollout.phase.value}{f' ({rollout.reason})' if rollout.reason else ''}  "
        f"wave {rollout.wave + 1}/{rollout.waves}  {counts}"
    )
    lines = [head]
    for number, counts in enumerate(rollout.wave_counts(), 1):
        states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        name = "canary" if number == 1 else f"wave {number}"
        lines.append(f"  {name:<8} {sum(counts.values()):>5} devices: {states}")
    for device, p in rollout.devices.items():
        if p.state.value not in ("queued", "confirmed"):
            lines.append(f"  {device:<24} wave {p.wave + 1}  {p.state.value}  {p.detail}".rstrip())
    return lines


@ota_app.command("status")
def ota_status(
    rollout_id: Annotated[
        str | None, typer.Argument(help="Rollout id [default: the latest].", show_default=False)
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Show it live until it ends.")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show a rollout: its phase and wave, and every device not yet confirmed, with its
    state and the device's reason."""
    from vibewatch.ota.rollout import Phase
    from vibewatch.ota.store import RolloutError

    line = ProgressLine(every=5.0)
    while True:
        with _store(config) as store:
            try:
                if rollout_id is None:
                    every = store.rollouts()
                    if not every:
                        fail("no rollout yet (`vibewatch ota deploy` creates one)", 2)
                    rollout = every[-1]
                else:
                    rollout = store.load(rollout_id)
            except RolloutError as exc:
                fail(str(exc), 2)
        ended = rollout.phase in (Phase.COMPLETED, Phase.ABORTED)
        if not watch or ended:
            break
        line.show(_status_lines(rollout)[0])
        time.sleep(1.0)
    line.end()
    if as_json:
        typer.echo(json.dumps(_rollout_json(rollout), indent=2))
    else:
        typer.echo("\n".join(_status_lines(rollout)))


@ota_app.command("list")
def ota_list(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Every rollout, oldest first."""
    with _store(config) as store:
        rollouts = store.rollouts()
    if as_json:
        typer.echo(json.dumps([_rollout_json(r) | {"devices": len(r.devices)} for r in rollouts]))
        return
    for rollout in rollouts:
        typer.echo(_status_lines(rollout)[0])


def _command(rollout_id: str, command: Any, reason: str, config: Any) -> None:
    from vibewatch.ota.store import RolloutError

    with _store(config) as store:
        try:
            store.request(rollout_id, command, reason)
        except RolloutError as exc:
            fail(str(exc), 2)
    typer.echo(f"{rollout_id}: {command} requested; the controller carries it out within a second")


ReasonOption = Annotated[str, typer.Option("--reason", help="Why, for the record.")]


@ota_app.command("pause")
def ota_pause(
    rollout_id: RolloutArgument, reason: ReasonOption = "", config: ConfigOption = None
) -> None:
    """Start no new wave; devices already sent their job go on."""
    _command(rollout_id, "pause", reason, config)


@ota_app.command("resume")
def ota_resume(
    rollout_id: RolloutArgument, reason: ReasonOption = "", config: ConfigOption = None
) -> None:
    """Go on after a pause."""
    _command(rollout_id, "resume", reason, config)


@ota_app.command("abort")
def ota_abort(
    rollout_id: RolloutArgument, reason: ReasonOption = "", config: ConfigOption = None
) -> None:
    """Stop for good: no further wave; devices on the new model are rolled back."""
    _command(rollout_id, "abort", reason, config)


@ota_app.command("rollback")
def ota_rollback(
    rollout_id: RolloutArgument, reason: ReasonOption = "", config: ConfigOption = None
) -> None:
    """Send every device running the rollout's model back to the model it ran before
    (the one its other slot keeps), also after the rollout completed; a running rollout
    aborts."""
    _command(rollout_id, "rollback", reason, config)


@ota_app.command("serve")
def ota_serve(config: ConfigOption = None) -> None:
    """Run the OTA controller alone (`vibewatch serve` runs it with the other services).

    SIGTERM or Ctrl-C stops it; a rollout goes on where it was at the next start.
    """
    from vibewatch.logs import setup_logging
    from vibewatch.serve import build_services, run_services

    cfg = load(config)
    setup_logging(cfg.log.level, cfg.log.format)
    raise typer.Exit(run_services(build_services(cfg, ["ota"])))


@devices_app.command("list")
def devices_list(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """Every device a status message came from: online, firmware, model, slots, last seen,
    labels, and its part in the latest rollout that targets it."""
    with _store(config) as store:
        devices = store.devices()
        latest: dict[str, dict[str, Any]] = {}
        for rollout in store.rollouts():  # oldest first: the latest wins
            for device in rollout.devices:
                part = _device_part(rollout, device)
                latest[device] = {"rollout": rollout.rollout_id, "phase": rollout.phase.value}
                latest[device] |= part
    if as_json:
        shown = [dataclasses.asdict(d) | {"rollout": latest.get(d.device)} for d in devices]
        typer.echo(json.dumps(shown))
        return
    for d in devices:
        slots = d.status.get("slots") or {}
        mine = latest.get(d.device)
        rollout = f"{mine['rollout']} {mine['state']}" if mine else "-"
        labels = " ".join(f"{k}={v}" for k, v in d.labels.items())
        typer.echo(
            f"{d.device:<24} {'online ' if d.online else 'offline'}  {d.firmware or '-':<12} "
            f"{d.model_id or '-'} v{d.model_version if d.model_version is not None else '-'}  "
            f"slots {slots.get('a', '-')}/{slots.get('b', '-')}  {rollout}  "
            f"last seen {d.last_seen}  {labels}".rstrip()
        )


@devices_app.command("label")
def devices_label(
    items: Annotated[
        list[str],
        typer.Argument(
            help="Devices (ids or globs such as `pump-*`), then labels KEY=VALUE to set.",
            show_default=False,
        ),
    ],
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", help="A label key to remove; repeatable.", show_default=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Label devices, e.g. `vibewatch devices label pump-01 pump-02 site=north line=a`;
    `vibewatch ota deploy --group site=north` targets them."""
    from vibewatch.protocol import ID_RE

    selectors = [item for item in items if "=" not in item]
    put = dict(item.split("=", 1) for item in items if "=" in item)
    gone = list(remove or [])
    for word in [*put, *put.values(), *gone]:
        if ID_RE.fullmatch(word) is None:
            fail(f"label key or value {word!r}: 1 to 64 characters from A-Z a-z 0-9 . _ -", 2)
    _require_selectors(selectors, items, " before the labels")
    if not put and not gone:
        fail("nothing to do: give labels KEY=VALUE or --remove KEY", 2)
    with _store(config) as store:
        chosen = _chosen(store, selectors)
        store.label(chosen, put, gone)
    typer.echo(f"labelled {len(chosen)} devices")


def _require_selectors(selectors: list[str], given: list[str], where: str = "") -> None:
    """Exit with status 2 unless ``selectors`` are device ids or globs, at least one."""
    from vibewatch.protocol import DEVICE_SELECTOR_RE

    bad = [s for s in selectors if DEVICE_SELECTOR_RE.fullmatch(s) is None]
    if bad or not selectors:
        fail(f"give devices (ids or globs){where}, not {bad or given}", 2)


def _chosen(store: Any, selectors: list[str]) -> list[str]:
    """The known devices that ``selectors`` (ids or globs, checked) name, sorted; exits with
    status 2 naming a selector that matches none."""
    import fnmatch

    known = [d.device for d in store.devices()]
    missing = [s for s in selectors if not any(fnmatch.fnmatchcase(d, s) for d in known)]
    if missing:
        fail(f"no known device matches {', '.join(missing)} (no status received)", 2)
    return sorted({d for s in selectors for d in known if fnmatch.fnmatchcase(d, s)})


@devices_app.command("calibrate")
def devices_calibrate(
    devices: Annotated[
        list[str],
        typer.Argument(help="Devices: ids or globs such as `pump-*`.", show_default=False),
    ],
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0.0,
            help="Seconds to wait for the devices' replies (a device answers once it has "
            "scored its calibration windows: 600 by default, ten minutes at one a second); "
            "0 only sends.",
        ),
    ] = 0.0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Make devices learn their own baseline: each scores its next calibration windows
    of healthy operation and sets its threshold from their upper tail (the training
    job's rule), at most its model's ceiling. The threshold stays across reboots until a
    new model; `vibewatch devices show` prints it once the device reports it."""
    from vibewatch.ota.commands import send_commands
    from vibewatch.protocol import CommandName

    _require_selectors(devices, devices)
    cfg = load(config)
    with _store(config) as store:
        chosen = _chosen(store, devices)
    results = send_commands(cfg, chosen, CommandName.CALIBRATE, wait_s=wait)
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in results]))
        return
    for r in results:
        if r.reply is None:
            typer.echo(f"{r.device}: sent ({r.id})" + (", no reply yet" if wait else ""))
            continue
        said = f" ({r.reply.detail})" if r.reply.detail else ""
        threshold = f", threshold {r.reply.threshold:.6g}" if r.reply.threshold else ""
        typer.echo(f"{r.device}: {r.reply.outcome.value}{said}{threshold}")


@devices_app.command("show")
def devices_show(
    device: Annotated[str, typer.Argument(help="Device id.", show_default=False)],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """One device: online, firmware, model, slot states, last seen, the anomaly threshold
    in force (the model's, its own calibration's or a command's), and its part in the
    rollouts that target it."""
    with _store(config) as store:
        known = {d.device: d for d in store.devices()}
        if device not in known:
            fail(f"no status received from device {device!r}", 2)
        parts = [
            {"rollout": r.rollout_id, "phase": r.phase.value, **_device_part(r, device)}
            for r in store.rollouts()
            if device in r.devices
        ]
    shown = dataclasses.asdict(known[device]) | {"rollouts": parts}
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    d = known[device]
    slots = d.status.get("slots") or {}
    typer.echo(
        f"{d.device}: {'online' if d.online else 'offline'}, firmware {d.firmware or '-'}, "
        f"model {d.model_id or '-'} v{d.model_version if d.model_version is not None else '-'}"
        f", slots a {slots.get('a', '-')} b {slots.get('b', '-')}, last seen {d.last_seen}"
    )
    if d.labels:
        typer.echo("  labels: " + " ".join(f"{k}={v}" for k, v in d.labels.items()))
    capabilities = d.status.get("capabilities")
    if capabilities:
        typer.echo("  capabilities: " + " ".join(capabilities))
    if "threshold" in d.status:
        source = d.status.get("threshold_source", "model")
        typer.echo(f"  threshold: {d.status['threshold']:.6g} ({source})")
    for part in parts:
        detail = f" ({part['detail']})" if part["detail"] else ""
        typer.echo(f"  {part['rollout']} ({part['phase']}): {part['state']}{detail}")


def _device_part(rollout: Any, device: str) -> dict[str, Any]:
    progress = rollout.devices[device]
    return {"state": progress.state.value, "wave": progress.wave + 1, "detail": progress.detail}


AccessDirOption = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="Directory of the broker's password file, ACL and secrets "
        "\\[default: <data_home>/broker].",
        show_default=False,
    ),
]
UsersArgument = Annotated[
    list[str],
    typer.Argument(
        help="Device ids, or back-end service names with a dot (svc.ingest).",
        show_default=False,
    ),
]


def _access(directory: Path | None, config: Path | None) -> Any:
    from vibewatch.access import AccessFiles

    cfg = load(config)
    return AccessFiles(directory or cfg.data_home / "broker", cfg.mqtt.topic_prefix)


@devices_app.command("provision")
def devices_provision(
    users: UsersArgument,
    renew: Annotated[
        bool, typer.Option("--renew", help="New passwords for users that have one.")
    ] = False,
    cert: Annotated[
        bool,
        typer.Option(
            "--cert",
            help="Also issue each a client certificate (common name = the user) from the "
            "local CA in DIR/ca, made on first use: DIR/devices/ID.crt and ID.key.",
        ),
    ] = False,
    directory: AccessDirOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Give devices (and back-end services) their broker credentials: a random password
    each, written to DIR/devices/ID.password (or DIR/services/NAME.password) with mode
    0600 and never printed, its hash in DIR/passwd (Mosquitto's password_file), and the
    ACL in DIR/acl (acl_file) that lets each device publish only its own uplink topics and
    read only its own downlink. Reload the broker afterwards (systemctl reload mosquitto)."""
    from vibewatch.access import CertificateAuthority

    access = _access(directory, config)
    with exits():
        made = access.provision(users, renew=renew)
        ca = CertificateAuthority(access.directory)
        issued = {c.user: ca.issue(c.user) for c in made} if cert else {}
    if as_json:
        shown = []
        for c in made:
            entry = {**dataclasses.asdict(c), "password_file": str(c.password_file)}
            if c.user in issued:
                entry["certificate"] = str(issued[c.user].certificate)
                entry["key"] = str(issued[c.user].key)
            shown.append(entry)
        answer = {"passwd": str(access.passwd), "acl": str(access.acl), "users": shown}
        if cert:
            answer["ca"] = str(ca.certificate)
        typer.echo(json.dumps(answer))
        return
    for c in made:
        typer.echo(f"{c.user}: {'new password' if c.created else 'kept'} in {c.password_file}")
        if c.user in issued:
            typer.echo(f"{c.user}: certificate {issued[c.user].certificate}")
    typer.echo(f"password file {access.passwd}, ACL {access.acl}: reload the broker")


@devices_app.command("broker-cert")
def devices_broker_cert(
    hosts: Annotated[
        list[str],
        typer.Argument(
            help="Names and addresses devices reach the broker by (DNS names, IPs).",
            show_default=False,
        ),
    ],
    directory: AccessDirOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Issue the broker's TLS certificate for HOSTS from the local CA in DIR/ca (made on
    first use): DIR/broker/<first host>.crt and .key for Mosquitto's certfile and keyfile;
    devices and services trust DIR/ca/ca.crt (mqtt.tls_ca_file)."""
    from vibewatch.access import CertificateAuthority

    access = _access(directory, config)
    ca = CertificateAuthority(access.directory)
    with exits():
        issued = ca.issue(hosts[0], hosts=hosts)
    if as_json:
        shown = {"certificate": str(issued.certificate), "key": str(issued.key)}
        typer.echo(json.dumps({**shown, "ca": str(ca.certificate), "hosts": hosts}))
        return
    typer.echo(f"certificate {issued.certificate}, key {issued.key}, CA {ca.certificate}")


@devices_app.command("revoke")
def devices_revoke(
    users: UsersArgument,
    directory: AccessDirOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Remove devices (or services) from the broker's password file and delete their
    secrets; once the broker reloads (systemctl reload mosquitto) they cannot connect."""
    access = _access(directory, config)
    with exits():
        gone = access.revoke(users)
    if as_json:
        typer.echo(json.dumps({"revoked": gone, "passwd": str(access.passwd)}))
        return
    typer.echo(f"revoked {', '.join(gone)} in {access.passwd}: reload the broker")
