"""Writers: the one place where line protocol leaves the process for InfluxDB.

Policy (batching, retries, splitting, spooling) lives in :mod:`vibewatch.ingest`;
a writer is the mechanism behind one method, :meth:`PointWriter.write`, which
sends one newline-terminated line-protocol body and either returns (the points
are durable in InfluxDB) or raises:

* :class:`~vibewatch.errors.RetryableWriteError` — connection errors, timeouts,
  5xx, 429, and the configuration-level 401/403/404 (a wrong token or a
  missing database must never send good data to the reject log);
* :class:`~vibewatch.errors.RejectedWriteError` — 400, 413 and 422: the body
  itself is refused; the caller splits it to find the bad line.

Implementations: :class:`InfluxV1Writer` (the 1.x ``/write`` API over a
kept-alive ``http.client`` connection per thread), :class:`InfluxV2Writer`
(2.x/3.x through ``influxdb-client``) and :class:`MemoryWriter` (in-memory, for
unit tests of the policy code).
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

from vibewatch.errors import RejectedWriteError, RetryableWriteError, WriteError
from vibewatch.influx.query import (
    basic_authorization,
    foreign_error,
    parse_base_url,
    quote_identifier,
)

if TYPE_CHECKING:
    from vibewatch.config import InfluxConfig

log = logging.getLogger(__name__)

#: Statuses that mean "this data is refused"; every other failure is retried.
REJECT_STATUSES = frozenset({400, 413, 422})


class PointWriter(Protocol):
    """Sends line protocol to a time-series database."""

    def write(self, body: bytes) -> None:
        """Write a newline-terminated line-protocol body with nanosecond timestamps.

        Raises:
            RetryableWriteError: Transient or configuration failure; try later.
            RejectedWriteError: The data is refused; retrying the same body fails again.
        """

    def close(self) -> None:
        """Release connections."""


def status_error(status: int, message: str) -> WriteError:
    """Map an HTTP status and message to the right :class:`WriteError` subclass."""
    text = f"InfluxDB answered {status}: {message.strip()[:500]}"
    if status in REJECT_STATUSES:
        return RejectedWriteError(text, status)
    return RetryableWriteError(text, status)


class InfluxV1Writer:
    """Writes to the InfluxDB 1.x HTTP API (``POST /write``).

    One kept-alive connection per calling thread; gzip bodies when asked.
    Credentials travel in an ``Authorization: Basic`` header, never in the URL.
    """

    def __init__(
        self,
        *,
        url: str,
        database: str,
        retention_policy: str = "",
        username: str = "",
        password: str = "",
        timeout: float = 10.0,
        gzip_level: int | None = 1,
    ) -> None:
        """Configure the writer; no connection is opened until the first write.

        Args:
            url: Base URL, ``http://host:port`` or ``https://host:port``.
            database: Target database.
            retention_policy: Target retention policy; empty for the default.
            username: User for basic auth; empty for none.
            password: Password for basic auth.
            timeout: Socket timeout in seconds.
            gzip_level: gzip compression level 1-9, or ``None`` to send plain text.

        Raises:
            ValueError: ``url`` is not ``http(s)://host[:port]`` (the message shows it
                with its credentials masked).
        """
        base = parse_base_url(url)
        self._https = base.https
        self._host = base.host
        self._port = base.port
        self._base = base.path
        self._timeout = timeout
        self._gzip_level = gzip_level
        query = {"db": database, "precision": "ns"}
        if retention_policy:
            query["rp"] = retention_policy
        self._write_path = f"{self._base}/write?{urllib.parse.urlencode(query)}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzip_level is not None:
            self._headers["Content-Encoding"] = "gzip"
        if username:
            self._headers["Authorization"] = basic_authorization(username, password)
        self._database = database
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._all_lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """Send one request; return the body of a 2xx answer, raise otherwise."""
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            text, cause = foreign_error(exc)
            raise RetryableWriteError(f"InfluxDB at {self._host}:{self._port}: {text}") from cause
        if response.will_close:
            self._drop_connection()
        if not 200 <= response.status < 300:
            message = payload.decode("utf-8", "replace")
            with contextlib.suppress(ValueError, AttributeError):
                message = str(json.loads(message).get("error", message))
            raise status_error(response.status, message)
        return payload

    def write(self, body: bytes) -> None:
        """See :meth:`PointWriter.write`."""
        if self._gzip_level is not None:
            body = gzip.compress(body, compresslevel=self._gzip_level, mtime=0)
        self._request("POST", self._write_path, body, self._headers)

    def ensure_database(self) -> None:
        """Create the database if it does not exist (``CREATE DATABASE`` is idempotent).

        Raises:
            WriteError: The server refused (for example, no admin rights).
        """
        statement = f"CREATE DATABASE {quote_identifier(self._database)}"
        query = urllib.parse.urlencode({"q": statement})
        headers = {k: v for k, v in self._headers.items() if k == "Authorization"}
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        self._request("POST", f"{self._base}/query", query.encode("ascii"), headers)

    def close(self) -> None:
        """See :meth:`PointWriter.close`."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class InfluxV2Writer:
    """Writes to the InfluxDB 2.x/3.x API (``POST /api/v2/write``) via ``influxdb-client``."""

    def __init__(
        self,
        *,
        url: str,
        org: str,
        bucket: str,
        token: str,
        timeout: float = 10.0,
        gzip_level: int | None = 1,
    ) -> None:
        """Configure the client (its own retries are off: the caller owns retry policy).

        Args:
            url: Base URL of the server.
            org: Organization name or id.
            bucket: Target bucket.
            token: API token (sent as ``Authorization: Token ...``).
            timeout: Request timeout in seconds.
            gzip_level: Any value enables gzip (the client picks its level); ``None`` disables it.
        """
        # imported here: the client is large and only the v2 API needs it
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._org = org
        self._bucket = bucket
        self._client = InfluxDBClient(
            url=url,
            token=token,
            org=org,
            timeout=int(timeout * 1000),
            enable_gzip=gzip_level is not None,
            retries=False,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, body: bytes) -> None:
        """See :meth:`PointWriter.write`."""
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(
                bucket=self._bucket,
                org=self._org,
                record=body,
                # the client's constants are plain strings, its annotation the class
                write_precision=cast(WritePrecision, WritePrecision.NS),
            )
        except ApiException as exc:
            raise status_error(int(exc.status or 0), str(exc.body or exc.reason)) from exc
        except Exception as exc:  # urllib3 and socket errors: the client has many types
            text, cause = foreign_error(exc)
            raise RetryableWriteError(f"InfluxDB v2 write failed: {text}") from cause

    def close(self) -> None:
        """See :meth:`PointWriter.close`."""
        self._client.close()  # type: ignore[no-untyped-call]


class MemoryWriter:
    """Keeps written bodies in memory; a ``fail`` hook can refuse writes (unit tests)."""

    def __init__(self, fail: Callable[[bytes], WriteError | None] | None = None) -> None:
        """Create an empty writer.

        Args:
            fail: Called with each body; a returned error is raised instead of writing.
        """
        self.lines: list[str] = []
        self.writes = 0
        self.fail = fail
        self._lock = threading.Lock()

    def write(self, body: bytes) -> None:
        """See :meth:`PointWriter.write`."""
        if self.fail is not None:
            error = self.fail(body)
            if error is not None:
                raise error
        with self._lock:
            self.lines.extend(body.decode("utf-8").splitlines())
            self.writes += 1

    def close(self) -> None:
        """See :meth:`PointWriter.close`."""


def make_writer(influx: InfluxConfig) -> PointWriter:
    """Build the writer selected by an ``[influx]`` configuration section."""
    level = influx.gzip_level if influx.gzip else None
    if influx.api == "v2":
        return InfluxV2Writer(
            url=influx.url,
            org=influx.org,
            bucket=influx.bucket,
            token=influx.token.reveal(),
            timeout=influx.timeout,
            gzip_level=level,
        )
    return InfluxV1Writer(
        url=influx.url,
        database=influx.database,
        retention_policy=influx.retention_policy,
        username=influx.username,
        password=influx.password.reveal(),
        timeout=influx.timeout,
        gzip_level=level,
    )
