"""The ingestion service on in-memory collaborators: what it writes, rejects and acknowledges."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from vibewatch.config import load_config
from vibewatch.influx.writers import MemoryWriter
from vibewatch.ingest.deadletter import DeadLetterLog
from vibewatch.ingest.service import IngestService
from vibewatch.ingest.spool import Spool
from vibewatch.mqtt import AckToken, MessageHandler
from vibewatch.protocol import REJECT_REASONS
from vibewatch.testing.ingest import wait_for
from vibewatch.testing.load import telemetry


class MemorySubscription:
    """A subscription that hands the test's messages to the service and records acks."""

    def __init__(self) -> None:
        self.stale_acks = 0
        self.acked: list[int] = []
        self.handler: MessageHandler | None = None
        self.stopped = False

    @property
    def ready(self) -> bool:
        return self.handler is not None and not self.stopped

    def start(self, on_message: MessageHandler | None = None, timeout: float = 30.0) -> None:
        self.handler = on_message

    def ack(self, tokens: Sequence[AckToken]) -> None:
        self.acked.extend(token.mid for token in tokens)

    def unsubscribe_all(self, timeout: float = 10.0) -> bool:
        return True

    def stop(self, *, end_session: bool = False) -> None:
        self.stopped = True

    def deliver(self, mid: int, topic: str | None, payload: bytes) -> None:
        assert self.handler is not None
        self.handler(topic, payload, AckToken(0, mid))


def test_the_service_runs_on_the_collaborators_it_is_given(tmp_path: Path) -> None:
    config = load_config(environ={"VIBEWATCH_INGEST_BATCH_MAX_AGE": "0.05"})
    session, writer = MemorySubscription(), MemoryWriter()
    service = IngestService(
        config.ingest,
        session=session,
        writer=writer,
        spool=Spool(tmp_path / "spool"),
        deadletter=DeadLetterLog(tmp_path / "dead.jsonl"),
        topic_prefix="vw/v1/",
        instance="unit",
    )
    service.start()
    assert service.ready and service.name == "ingest"
    now_ms = int(time.time() * 1000)
    session.deliver(1, "vw/v1/pump-1/telemetry", telemetry("pump-1", 0, now_ms, n=3).encode())
    session.deliver(2, "vw/v1/pump-1/telemetry", b"{not json")
    session.deliver(3, "vw/v1/pump-1/ota/job", b"{}")  # not an ingested kind
    session.deliver(4, None, b"")  # a topic that is not UTF-8
    wait_for(lambda: session.acked == [1, 2, 3, 4], 10, "the acknowledgements, in order")
    readings = [line for line in writer.lines if line.startswith("reading,")]
    assert len(readings) == 3 and all("device=pump-1" in line for line in readings)
    dead = (tmp_path / "dead.jsonl").read_text().splitlines()
    assert len(dead) == 3
    assert dict(+service.stats.rejected) == {"bad_json": 1, "bad_topic": 2}
    # every reason is counted, at 0 until it happens, so its first rejection shows as a step
    assert set(service.stats.rejected) >= {*REJECT_REASONS, "internal_error", "influx_rejected"}
    assert service.stop(5)
    assert session.stopped
    assert any(line.startswith("vibewatch_ingest,") for line in writer.lines)
