"""The dead-letter log: every rejected message, one JSON object per line.

Each record holds the receive time, the topic, the reject reason and detail,
the payload size and its first bytes (``payload_prefix``, decoded as UTF-8 with
replacement characters, so hostile bytes cannot break the log). The file is
rotated to ``<name>.1`` when it passes its size limit.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX_BYTES = 256


class DeadLetterLog:
    """Appends rejections to a JSON-lines file. Thread-safe."""

    def __init__(self, path: Path, *, max_bytes: int = 64 << 20) -> None:
        """Open ``path`` for appending (creating its folder).

        Args:
            path: The log file.
            max_bytes: Rotate to ``path.1`` (replacing it) past this size.
        """
        self.path = path
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        self._size = self._file.tell()

    def record(self, *, topic: str | None, reason: str, detail: str, payload: bytes) -> None:
        """Append one rejection and flush it to the operating system."""
        entry = {
            "time": round(time.time(), 3),
            "topic": topic,
            "reason": reason,
            "detail": detail,
            "payload_bytes": len(payload),
            "payload_prefix": payload[:PREFIX_BYTES].decode("utf-8", "replace"),
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            if self._size + len(line) > self._max_bytes and self._size > 0:
                self._file.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                self._size = 0
            self._file.write(line)
            self._file.flush()
            self._size += len(line.encode("utf-8"))

    def sync(self) -> None:
        """fsync the log (called before the rejected messages are acknowledged)."""
        with self._lock:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush, sync and close the file."""
        with self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
