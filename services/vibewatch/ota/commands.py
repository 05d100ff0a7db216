"""Commands to devices (``cmd``) from the back end, and their replies (``cmd/reply``).

:func:`send_commands` publishes one command to each device at QoS 1 through a session
of its own (the configured client id with ``-cmd`` appended, ended when done) and, when
asked to, waits for the devices' replies. A ``calibrate`` command is answered only
once the device has scored its calibration windows (``calibrate_windows``, 600 by
default: ten minutes at one window a second), so callers usually send without waiting
and read the result from the device's next ``status`` (``vibewatch devices show``).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from vibewatch.config import Config
from vibewatch.errors import ProtocolError
from vibewatch.mqtt import AckToken, MqttSession, broker_settings
from vibewatch.protocol import (
    Command,
    CommandName,
    CommandReply,
    Kind,
    Limits,
    decode_message,
    parse_topic,
    topic_for,
)

__all__ = ["CommandResult", "send_commands"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    """What became of one command.

    Attributes:
        device: The device it went to.
        id: The command's id.
        reply: The device's reply; None when none came (or none was waited for).
    """

    device: str
    id: str
    reply: CommandReply | None = None

    def as_json(self) -> dict[str, object]:
        """Plain JSON data."""
        out: dict[str, object] = {"device": self.device, "id": self.id, "outcome": None}
        if self.reply is not None:
            out |= {
                "outcome": self.reply.outcome.value,
                "detail": self.reply.detail,
                "threshold": self.reply.threshold,
            }
        return out


def send_commands(
    config: Config,
    devices: Sequence[str],
    cmd: CommandName,
    *,
    threshold: float | None = None,
    wait_s: float = 0.0,
) -> list[CommandResult]:
    """Send ``cmd`` to each of ``devices``; with ``wait_s`` > 0, wait that long at most for
    their replies.

    Args:
        config: The broker and topic prefix (``[mqtt]``).
        devices: Device ids.
        cmd: The command.
        threshold: ``set_threshold`` only: the threshold.
        wait_s: Seconds to wait for the replies; 0 returns once the broker took every
            command.

    Returns:
        One result per device, in order.

    Raises:
        MqttError: The broker refused the connection or a command.
        TimeoutError: The broker did not acknowledge a command in time.
    """
    mqtt = config.mqtt
    prefix = mqtt.topic_prefix
    stamp = f"{cmd.value}-{int(time.time())}-{secrets.token_hex(3)}"
    ids = {device: f"{stamp}-{i}" for i, device in enumerate(devices)}
    replies: dict[str, CommandReply] = {}
    answered = threading.Condition()

    def on_message(topic: str | None, payload: bytes, token: AckToken | None) -> None:
        try:
            device, kind = parse_topic(topic, prefix)
            message = decode_message(
                kind, device, payload, now_ms=int(time.time() * 1000), limits=Limits()
            )
        except ProtocolError as exc:
            log.warning("a reply that breaks the contract is ignored (%s): %s", topic, exc)
            message = None
        if isinstance(message, CommandReply) and ids.get(message.device) == message.id:
            with answered:
                replies[message.device] = message
                answered.notify_all()
        if token is not None:
            session.ack([token])

    filters = [topic_for(prefix, device, Kind.CMD_REPLY) for device in devices] if wait_s else []
    session = MqttSession(
        dataclasses.replace(broker_settings(mqtt), client_id=f"{mqtt.client_id}-cmd"), filters
    )
    session.start(on_message)
    try:
        now_ms = int(time.time() * 1000)
        for device, command_id in ids.items():
            command = Command(device, command_id, now_ms, cmd, threshold)
            session.publish(topic_for(prefix, device, Kind.CMD), command.encode())
        deadline = time.monotonic() + wait_s
        with answered:
            while len(replies) < len(ids) and (left := deadline - time.monotonic()) > 0:
                answered.wait(left)
    finally:
        session.stop(end_session=True)
    return [CommandResult(device, ids[device], replies.get(device)) for device in devices]
