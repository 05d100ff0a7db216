"""Helpers for tests that run ``vibewatch ingest`` as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from vibewatch.localservers import LocalInfluxDB
from vibewatch.protocol import Reading, Telemetry

DAY_MS = 86_400_000


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def rows(influxdb: LocalInfluxDB, db: str, query: str) -> list[dict[str, object]]:
    """Run an InfluxQL query; return one dict per row (tags merged in, time in epoch ms)."""
    url = f"{influxdb.url}/query?" + urllib.parse.urlencode({"db": db, "q": query, "epoch": "ms"})
    with urllib.request.urlopen(url, timeout=30) as response:
        result = json.load(response)["results"][0]
    assert "error" not in result, result
    out = []
    for series in result.get("series", []):
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            row.update(series.get("tags", {}))
            out.append(row)
    return out


@dataclass
class IngestProcess:
    """One ``vibewatch ingest`` process with its own data home and log file."""

    env: dict[str, str]
    workdir: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"ingest-{self.starts}.log"

    @property
    def deadletter_path(self) -> Path:
        return Path(self.env["VIBEWATCH_DATA_HOME"]) / "deadletter.jsonl"

    def start(self) -> None:
        self.starts += 1
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vibewatch", "ingest", *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: "subscribed to" in self.log(), 30, f"ingest to subscribe:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def deadletters(self) -> list[dict[str, object]]:
        if not self.deadletter_path.exists():
            return []
        return [json.loads(line) for line in self.deadletter_path.read_text().splitlines()]


def ingest_env(
    *, mqtt_port: int, influx_url: str, database: str, data_home: Path, client_id: str
) -> dict[str, str]:
    """Environment for an ingest process pointed at the test servers."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")},
        "VIBEWATCH_MQTT_PORT": str(mqtt_port),
        "VIBEWATCH_MQTT_CLIENT_ID": client_id,
        "VIBEWATCH_INFLUX_URL": influx_url,
        "VIBEWATCH_INFLUX_DATABASE": database,
        "VIBEWATCH_DATA_HOME": str(data_home),
        "VIBEWATCH_INGEST_BATCH_MAX_AGE": "0.1",
        "VIBEWATCH_INGEST_STATS_INTERVAL": "1",
        "VIBEWATCH_INGEST_RETRY_BUDGET": "2",
        "VIBEWATCH_INGEST_RETRY_MAX": "2",
    }


def telemetry(device: str, seq0: int, t0: int, n: int = 10) -> Telemetry:
    """A telemetry message of ``n`` one-second readings with distinct values."""
    return Telemetry(
        device=device,
        readings=tuple(
            Reading(
                seq=seq0 + i,
                t=t0 + 1000 * i,
                score=(seq0 + i) / 7,
                rms=0.25 + i / 1000,
                peak=1.5,
                crest=6.0,
                kurtosis=3.0 + i / 3,
            )
            for i in range(n)
        ),
    )


@dataclass
class Publisher:
    """A QoS 1 publisher that retries every message until the broker acknowledges it.

    It survives broker restarts: a message that is not acknowledged in time is
    published again (a duplicate rewrites the same points).
    """

    port: int
    client_id: str = "test-publisher"
    published: int = 0
    failures: int = 0
    _client: mqtt.Client = field(init=False)

    def __post_init__(self) -> None:
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        self._client.reconnect_delay_set(0.2, 1)
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        while True:
            try:
                info = self._client.publish(topic, payload, qos=1, retain=retain)
                info.wait_for_publish(2)
                if info.is_published():
                    self.published += 1
                    return
            except (RuntimeError, ValueError):
                pass
            self.failures += 1
            time.sleep(0.2)

    def publish_all(self, messages: Iterable[tuple[str, bytes]], rate: float | None = None) -> None:
        """Publish in order, at most ``rate`` messages a second when given."""
        start = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            if rate is not None:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.publish(topic, payload)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def telemetry_stream(
    devices: int, messages: int, *, t0: int, prefix: str = "vw/v1/"
) -> list[tuple[str, bytes]]:
    """``messages`` telemetry messages spread over ``devices`` devices (10 readings each)."""
    out = []
    for i in range(messages):
        device = f"dev-{i % devices:03d}"
        n = i // devices
        out.append(
            (f"{prefix}{device}/telemetry", telemetry(device, n * 10, t0 + n * 10_000).encode())
        )
    return out


class Background(threading.Thread):
    """Runs a function in a thread and re-raises its exception on :meth:`result`."""

    def __init__(self, target: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:  # re-raised in the test thread
            self.error = exc

    def result(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), "background publisher did not finish"
        if self.error is not None:
            raise self.error
