"""Rollouts, the operators' commands and the known devices, in the state database.

The controller keeps every rollout here after each change (a controller killed at any
moment resumes from what was saved), the ``vibewatch ota`` commands create rollouts and
queue commands (``pause``, ``resume``, ``abort``, ``rollback``) that the controller
carries out in order, :meth:`RolloutStore.record_status` keeps what each device last said
of itself (``vibewatch devices``, and the checks of a new rollout), and the operators
label devices (:meth:`RolloutStore.label`) to name groups of them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from vibewatch.errors import VibewatchError
from vibewatch.ota.rollout import DeviceProgress, DeviceState, Phase, Rollout, RolloutPlan
from vibewatch.protocol import DeviceState as Online
from vibewatch.protocol import Status
from vibewatch.state import transaction

__all__ = ["Command", "KnownDevice", "RolloutError", "RolloutStore"]

Command = Literal["pause", "resume", "abort", "rollback"]
COMMANDS: Final[tuple[Command, ...]] = ("pause", "resume", "abort", "rollback")


class RolloutError(VibewatchError):
    """A rollout that does not exist, or an operation it does not allow; the message says
    which."""


@dataclass(frozen=True)
class KnownDevice:
    """A device as its last status message describes it.

    Attributes:
        device: Its id.
        online: Whether its last status said ``online`` (its last will says offline).
        firmware: Firmware version, from its last birth message.
        model_id: The active model's id.
        model_version: The active model's version.
        status: The last status message, as JSON (slots, capabilities ...).
        last_seen: When it was received (UTC, ISO 8601).
        labels: The operators' labels, ``{key: value}``.
    """

    device: str
    online: bool
    firmware: str | None
    model_id: str | None
    model_version: int | None
    status: dict[str, Any]
    last_seen: str
    labels: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RolloutStore:
    """Rollouts and devices in an open state database (see the module documentation)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        """Use ``db`` (from :func:`vibewatch.state.open_state_db`)."""
        self._db = db
        # (rollout id, device): the row as this store last wrote or read it
        self._rows: dict[tuple[str, str], tuple[Any, ...]] = {}

    # ------------------------------------------------------------------ rollouts
    def create(self, plan: RolloutPlan) -> Rollout:
        """Save a new rollout of ``plan`` (not started) and return it; its id is
        ``rollout-N``, N counting up."""
        with transaction(self._db):
            number = self._db.execute(
                "SELECT coalesce(max(number), 0) + 1 FROM rollouts"
            ).fetchone()[0]
            rollout = Rollout(f"rollout-{number}", plan)
            now = _now()
            self._db.execute(
                "INSERT INTO rollouts (rollout_id, number, model_id, version, plan, phase, "
                "wave, reason, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rollout.rollout_id,
                    number,
                    plan.model_id,
                    plan.version,
                    json.dumps(asdict(plan)),
                    rollout.phase.value,
                    rollout.wave,
                    rollout.reason,
                    now,
                    now,
                ),
            )
            self._save_devices(rollout)
        return rollout

    def save(self, rollout: Rollout) -> None:
        """Save a rollout's state and its targets' progress, in one transaction (the rows
        of the targets whose progress changed since this store wrote or read them)."""
        with transaction(self._db):
            self._db.execute(
                "UPDATE rollouts SET phase = ?, wave = ?, reason = ?, updated_at = ? "
                "WHERE rollout_id = ?",
                (rollout.phase.value, rollout.wave, rollout.reason, _now(), rollout.rollout_id),
            )
            self._save_devices(rollout)

    def _save_devices(self, rollout: Rollout) -> None:
        rows = [
            (rollout.rollout_id, device, p.state.value, p.wave, p.sent_s, p.changed_s, p.detail,
             p.activated_s)
            for device, p in rollout.devices.items()
        ]  # fmt: skip
        changed = [row for row in rows if self._rows.get((row[0], row[1])) != row]
        self._db.executemany(
            "INSERT INTO rollout_devices (rollout_id, device, state, wave, sent_s, changed_s, "
            "detail, activated_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (rollout_id, device) DO UPDATE SET state = excluded.state, "
            "sent_s = excluded.sent_s, changed_s = excluded.changed_s, "
            "detail = excluded.detail, activated_s = excluded.activated_s",
            changed,
        )
        self._rows.update(((row[0], row[1]), row) for row in changed)

    def load(self, rollout_id: str) -> Rollout:
        """A saved rollout.

        Raises:
            RolloutError: There is none of that id.
        """
        row = self._db.execute(
            "SELECT plan, phase, wave, reason FROM rollouts WHERE rollout_id = ?", (rollout_id,)
        ).fetchone()
        if row is None:
            known = ", ".join(r.rollout_id for r in self.rollouts()[-5:]) or "none yet"
            raise RolloutError(f"no rollout {rollout_id!r} (the latest: {known})")
        plan_json, phase, wave, reason = row
        fields = json.loads(plan_json)
        plan = RolloutPlan(
            **{**fields, "targets": tuple(fields["targets"]), "waves": tuple(fields["waves"])}
        )
        devices = {}
        for row in self._db.execute(
            "SELECT rollout_id, device, state, wave, sent_s, changed_s, detail, activated_s "
            "FROM rollout_devices WHERE rollout_id = ?",
            (rollout_id,),
        ):
            _, device, state, wave_of, sent_s, changed_s, detail, active = row
            devices[device] = DeviceProgress(
                DeviceState(state), wave_of, sent_s, changed_s, detail, active
            )
            self._rows[(rollout_id, device)] = tuple(row)
        ordered = {device: devices[device] for device in plan.targets}
        return Rollout(rollout_id, plan, ordered, wave, Phase(phase), reason)

    def ids(self, *, active: bool = False) -> list[str]:
        """The ids of the saved rollouts (with ``active``, of those running or paused),
        oldest first."""
        where = "WHERE phase IN ('running', 'paused') " if active else ""
        query = f"SELECT rollout_id FROM rollouts {where}ORDER BY number"  # noqa: S608
        return [row[0] for row in self._db.execute(query)]

    def rollouts(self) -> list[Rollout]:
        """Every saved rollout, oldest first."""
        return [self.load(rollout_id) for rollout_id in self.ids()]

    # ------------------------------------------------------------------ commands
    def request(self, rollout_id: str, command: Command, reason: str = "") -> None:
        """Queue an operator's command for the controller.

        ``rollback`` sends the devices running the rollout's model back to the one they
        ran before, also after the rollout ended (and aborts it while it runs).

        Raises:
            RolloutError: No such rollout, or it has ended (completed or aborted) and the
                command is not ``rollback``.
        """
        rollout = self.load(rollout_id)
        if command != "rollback" and rollout.phase in (Phase.COMPLETED, Phase.ABORTED):
            raise RolloutError(
                f"{rollout_id} has ended ({rollout.phase.value}): nothing to {command}"
            )
        with transaction(self._db):
            self._db.execute(
                "INSERT INTO rollout_commands (rollout_id, command, reason, requested_at) "
                "VALUES (?, ?, ?, ?)",
                (rollout_id, command, reason, _now()),
            )

    def take_commands(self) -> list[tuple[str, Command, str]]:
        """The queued commands, oldest first, as (rollout id, command, reason); they are
        removed."""
        with transaction(self._db):
            rows = self._db.execute(
                "SELECT id, rollout_id, command, reason FROM rollout_commands ORDER BY id"
            ).fetchall()
            self._db.execute("DELETE FROM rollout_commands")
        return [(rollout_id, command, reason) for _, rollout_id, command, reason in rows]

    # ------------------------------------------------------------------- devices
    def record_status(self, status: Status) -> None:
        """Keep what a status message says of its device (a last will only marks it
        offline and keeps the rest)."""
        online = status.state is Online.ONLINE
        body = status.encode().decode()
        with transaction(self._db):
            if online:
                self._db.execute(
                    "INSERT INTO devices (device, online, firmware, model_id, model_version, "
                    "status, last_seen) VALUES (?, 1, ?, ?, ?, ?, ?) ON CONFLICT (device) DO "
                    "UPDATE SET online = 1, firmware = excluded.firmware, model_id = "
                    "excluded.model_id, model_version = excluded.model_version, status = "
                    "excluded.status, last_seen = excluded.last_seen",
                    (
                        status.device,
                        status.firmware,
                        status.model_id,
                        status.model_version,
                        body,
                        _now(),
                    ),
                )
            else:
                self._db.execute(
                    "INSERT INTO devices (device, online, status, last_seen) VALUES (?, 0, ?, ?) "
                    "ON CONFLICT (device) DO UPDATE SET online = 0, last_seen = excluded.last_seen",
                    (status.device, body, _now()),
                )

    def record_install(self, device: str, model_id: str, version: int) -> None:
        """A device confirmed a model a rollout installed: it runs that model now (a device
        sends its status only when it connects)."""
        with transaction(self._db):
            self._db.execute(
                "UPDATE devices SET model_id = ?, model_version = ? WHERE device = ?",
                (model_id, version, device),
            )

    def devices(self) -> list[KnownDevice]:
        """Every device a status message was received from, by id, with its labels."""
        labels: dict[str, dict[str, str]] = {}
        for device, key, value in self._db.execute(
            "SELECT device, key, value FROM device_labels ORDER BY device, key"
        ):
            labels.setdefault(device, {})[key] = value
        return [
            KnownDevice(
                device,
                bool(online),
                firmware,
                model_id,
                version,
                json.loads(body),
                seen,
                labels.get(device, {}),
            )
            for device, online, firmware, model_id, version, body, seen in self._db.execute(
                "SELECT device, online, firmware, model_id, model_version, status, last_seen "
                "FROM devices ORDER BY device"
            )
        ]

    def label(self, devices: list[str], put: dict[str, str], remove: list[str]) -> None:
        """Set the labels ``put`` (key: value) on each of ``devices`` and remove the keys
        ``remove``, in one transaction (keys and values are checked by the caller)."""
        with transaction(self._db):
            for device in devices:
                self._db.executemany(
                    "DELETE FROM device_labels WHERE device = ? AND key = ?",
                    [(device, key) for key in remove],
                )
                self._db.executemany(
                    "INSERT INTO device_labels (device, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (device, key) DO UPDATE SET value = excluded.value",
                    [(device, key, value) for key, value in put.items()],
                )
