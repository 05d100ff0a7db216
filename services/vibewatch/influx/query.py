"""InfluxQL over the ``/query`` HTTP API: how vibewatch reads from InfluxDB.

The endpoint is the 1.x one, which InfluxDB 2.x and 3.x also serve, so the same
client reads from every generation: with ``api = "v1"`` it authenticates with
HTTP basic auth from ``influx.username``/``password`` and queries
``influx.database``; with ``api = "v2"`` it sends ``Authorization: Token ...``
and queries ``influx.bucket`` as the database (on 2.x, the database name that a
DBRP mapping gives the bucket). Credentials travel in headers, never in the URL,
and never appear in a message: a URL given with credentials anyway is shown
masked (:func:`vibewatch.redact.mask_url`), in this module's messages and in
those of the foreign errors it wraps.

Answers are always requested with ``chunked=true`` and ``epoch=ms``: the server
sends one JSON object per line, each holding at most ``chunk_size`` rows, and
:meth:`InfluxQL.stream` parses them one at a time, so a large result never sits
in memory as one JSON document. :func:`parse_chunk` is the pure part.

Values are put into statements in one of two ways. ``params`` sends JSON bind
parameters that the server substitutes for ``$name`` in ``WHERE`` clauses
(InfluxDB 1.x and 2.x do; the v1 API of 3.x ignores them). Code that
must run against every generation writes literals instead, with
:func:`quote_string` and :func:`quote_identifier`, which apply InfluxQL's
escaping.

Errors: every failure is a :class:`QueryError` naming the query (connection
errors, timeouts, an HTTP error status, an ``"error"`` in the answer, an answer
that is not JSON). It derives from :class:`~vibewatch.errors.VibewatchError`.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Self

import orjson

from vibewatch.errors import VibewatchError
from vibewatch.redact import mask_url, mask_urls_in

if TYPE_CHECKING:
    from vibewatch.config import InfluxConfig

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BaseUrl",
    "InfluxQL",
    "QueryError",
    "Series",
    "foreign_error",
    "merge_series",
    "parse_base_url",
    "parse_chunk",
    "quote_identifier",
    "quote_string",
]

DEFAULT_CHUNK_SIZE: Final = 10_000
"""Rows per answer chunk; InfluxDB 1.x uses the same default."""

_SHOWN_QUERY: Final = 300
"""Characters of a query repeated in an error message (a device list can be long)."""


class QueryError(VibewatchError):
    """An InfluxQL query failed; the message names the query and what went wrong.

    Attributes:
        query: The statement(s) sent.
        status: HTTP status code, or ``None`` when there was no HTTP answer or the
            error came inside a successful one.
    """

    def __init__(self, query: str, problem: str, status: int | None = None) -> None:
        shown = query if len(query) <= _SHOWN_QUERY else query[:_SHOWN_QUERY] + "..."
        super().__init__(f"InfluxQL query {shown!r} failed: {problem}")
        self.query = query
        self.status = status


@dataclass(frozen=True, slots=True)
class Series:
    """Rows of one series (measurement and tag set) of a query result.

    Attributes:
        name: Measurement name.
        tags: Values of the ``GROUP BY`` tags; empty without ``GROUP BY``.
        columns: Column names; ``time`` first (epoch milliseconds), then the
            selected fields and tags.
        values: One list per row, in ``columns`` order; a field a point does not
            have is ``None``.
        partial: More rows of this series follow in the next chunk.
    """

    name: str
    tags: Mapping[str, str]
    columns: tuple[str, ...]
    values: list[list[Any]] = field(repr=False)
    partial: bool = False


def quote_string(value: str) -> str:
    """Quote a string literal for InfluxQL (``'...'``, escaping ``\\``, ``'`` and newlines)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def basic_authorization(username: str, password: str) -> str:
    """The value of an ``Authorization: Basic`` header for InfluxDB 1.x."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def quote_identifier(name: str) -> str:
    """Quote an identifier (measurement, tag or field key) for InfluxQL (``"..."``)."""
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def parse_chunk(line: bytes, query: str) -> list[Series]:
    """Decode one line of a chunked answer into its series.

    Args:
        line: One JSON object, ``{"results": [...]}`` or ``{"error": ...}``.
        query: The statement(s) the answer belongs to, for error messages.

    Returns:
        The series of every statement result in the chunk, in order; empty for a
        statement without rows.

    Raises:
        QueryError: The line is not JSON of that shape, or the server reports an
            error for the request or for a statement.
    """
    try:
        answer = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise QueryError(query, f"answer is not JSON ({exc}): {line[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise QueryError(query, f"answer is not a JSON object: {line[:200]!r}")
    if "error" in answer:
        raise QueryError(query, str(answer["error"]))
    out: list[Series] = []
    try:
        for result in answer.get("results", []):
            if "error" in result:
                raise QueryError(query, str(result["error"]))
            for series in result.get("series", []):
                out.append(
                    Series(
                        name=str(series.get("name", "")),
                        tags=dict(series.get("tags") or {}),
                        columns=tuple(series["columns"]),
                        values=series.get("values") or [],
                        partial=bool(series.get("partial", False)),
                    )
                )
    except (AttributeError, KeyError, TypeError) as exc:
        raise QueryError(query, f"answer has an unexpected shape: {line[:200]!r}") from exc
    return out


def merge_series(pieces: Iterable[Series]) -> list[Series]:
    """Join the pieces of series that a chunked answer split (``partial``) into whole series."""
    merged: list[Series] = []
    continues = False
    for piece in pieces:
        last = merged[-1] if merged else None
        if (
            continues
            and last is not None
            and (last.name, last.tags, last.columns) == (piece.name, piece.tags, piece.columns)
        ):
            last.values.extend(piece.values)
        else:
            merged.append(
                Series(piece.name, piece.tags, piece.columns, list(piece.values), partial=False)
            )
        continues = piece.partial
    return merged


@dataclass(frozen=True, slots=True)
class BaseUrl:
    """Where an InfluxDB server is, from its base URL.

    Attributes:
        https: Whether to use TLS.
        host: Host name or address.
        port: TCP port (80 or 443 when the URL names none).
        path: Path prefix of the API, without a trailing ``/`` (usually empty).
    """

    https: bool
    host: str
    port: int
    path: str


def parse_base_url(url: str) -> BaseUrl:
    """Split the base URL of an InfluxDB server, as the writers and :class:`InfluxQL` take it.

    Raises:
        ValueError: ``url`` is not an ``http(s)://host[:port]`` URL; the message shows
            it with its credentials masked, and chains no error that would not.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a port that is not a number in 0..65535 raises
    except ValueError:
        # The foreign message may quote the port, which can be part of a password.
        port, parts = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"InfluxDB url {mask_url(url)!r} must be http(s)://host[:port]")
    https = parts.scheme == "https"
    return BaseUrl(https, parts.hostname, port or (443 if https else 80), parts.path.rstrip("/"))


def foreign_error(exc: BaseException) -> tuple[str, BaseException | None]:
    """The text of a foreign error for a message, and the cause to chain with ``from``.

    Client libraries put the URL they were given into their messages (urllib3's
    ``LocationParseError`` does); :func:`~vibewatch.redact.mask_urls_in` masks it. When
    that changed the text, the foreign error is not chained either: a traceback
    would print it in full.

    Returns:
        ``(repr of exc, masked; exc or None)``.
    """
    text = repr(exc)
    masked = mask_urls_in(text)
    return masked, exc if masked == text else None


class InfluxQL:
    """Runs InfluxQL statements through ``GET /query`` and streams the answer.

    A connection is opened per query and closed when its answer has been read,
    so an instance holds nothing between queries and may be shared by threads.
    """

    def __init__(
        self,
        *,
        url: str,
        database: str,
        retention_policy: str = "",
        username: str = "",
        password: str = "",
        token: str = "",
        timeout: float = 10.0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        """Configure the client; nothing is sent until the first query.

        Args:
            url: Base URL, ``http://host:port`` or ``https://host:port`` (a path is kept).
            database: Database to query (the bucket for 2.x/3.x).
            retention_policy: Retention policy for statements that name none; empty
                for the database's default.
            username: User for basic auth; empty for none.
            password: Password for basic auth.
            token: API token (``Authorization: Token ...``); takes the place of
                basic auth when set.
            timeout: Seconds to wait for the connection and for each read.
            chunk_size: Rows per answer chunk, at least 1.

        Raises:
            ValueError: ``url`` is not an http(s) URL with a host, or ``chunk_size`` < 1.
        """
        base = parse_base_url(url)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self._https = base.https
        self._host = base.host
        self._port = base.port
        self._timeout = timeout
        self._base = base.path
        self._common = {
            "db": database,
            "epoch": "ms",
            "chunked": "true",
            "chunk_size": str(chunk_size),
        }
        if retention_policy:
            self._common["rp"] = retention_policy
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Token {token}"
        elif username:
            self._headers["Authorization"] = basic_authorization(username, password)

    @classmethod
    def from_config(cls, influx: InfluxConfig, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Self:
        """Build the client for an ``[influx]`` section (v1: database; v2: bucket and token).

        Args:
            influx: The configuration section.
            chunk_size: Rows per answer chunk.
        """
        v2 = influx.api == "v2"
        return cls(
            url=influx.url,
            database=influx.bucket if v2 else influx.database,
            retention_policy="" if v2 else influx.retention_policy,
            username="" if v2 else influx.username,
            password="" if v2 else influx.password.reveal(),
            token=influx.token.reveal() if v2 else "",
            timeout=influx.timeout,
            chunk_size=chunk_size,
        )

    def stream(self, q: str, *, params: Mapping[str, Any] | None = None) -> Iterator[Series]:
        """Run ``q`` and yield its series chunk by chunk, as the server sends them.

        A long series arrives in several pieces with ``partial`` set on all but the
        last; :meth:`query` joins them. Stop iterating early to drop the rest of
        the answer (the connection is closed).

        Args:
            q: One or more InfluxQL statements, separated by ``;``.
            params: Bind parameters for ``$name`` placeholders; values must be JSON
                strings, numbers or booleans.

        Raises:
            QueryError: The server is unreachable or too slow, answers with an
                error status, or reports an error in the answer.
        """
        # Everything goes in the URL of a GET: every generation of the API reads the
        # statement there (3.x reads it nowhere else), and a read needs no POST.
        arguments = {**self._common, "q": q}
        if params:
            arguments["params"] = json.dumps(dict(params), allow_nan=False)
        path = f"{self._base}/query?{urllib.parse.urlencode(arguments)}"
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self._timeout)
        where = f"InfluxDB at {self._host}:{self._port}"
        try:
            try:
                conn.request("GET", path, headers=self._headers)
                response = conn.getresponse()
                if not 200 <= response.status < 300:
                    raise QueryError(q, _status_problem(response), response.status)
                while line := response.readline():
                    if line.strip():
                        yield from parse_chunk(line, q)
            except (OSError, http.client.HTTPException) as exc:
                text, cause = foreign_error(exc)
                raise QueryError(q, f"{where}: {text}") from cause
        finally:
            conn.close()

    def query(self, q: str, *, params: Mapping[str, Any] | None = None) -> list[Series]:
        """Run ``q`` and return every series, whole (see :meth:`stream` for the arguments).

        Series of several statements follow each other in statement order.

        Raises:
            QueryError: As for :meth:`stream`.
        """
        return merge_series(self.stream(q, params=params))


def _status_problem(response: http.client.HTTPResponse) -> str:
    """``InfluxDB answered <status>: <error>`` from an error answer's JSON or text body."""
    text = response.read().decode("utf-8", "replace")
    try:
        decoded = json.loads(text)
        message = str(decoded["error"]) if isinstance(decoded, dict) else text
    except (ValueError, KeyError):
        message = text
    return f"InfluxDB answered {response.status}: {message.strip()[:500]}"
