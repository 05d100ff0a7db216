"""The InfluxDB writers and query client never show the credentials of a URL.

Every URL-valued key of the configuration is tried (the keys typed ``HttpUrl``); the
servers are closed ports or unparseable addresses on loopback, so nothing is sent.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable

import pytest

from vibewatch.config import Config, HttpUrl, InfluxConfig, Secret
from vibewatch.errors import VibewatchError
from vibewatch.influx.query import InfluxQL, QueryError
from vibewatch.influx.writers import make_writer

SECRETS = ("hunter2", "tok-4711")

# Each of these makes a client fail: a port out of range, a port that is no number,
# a scheme that is not HTTP, a closed port.
BAD_URLS = [
    "http://admin:hunter2@127.0.0.1:99999/?u=admin&p=hunter2",
    "http://admin:hunter2@127.0.0.1:80x/?token=tok-4711",
    "ftp://admin:hunter2@127.0.0.1/?p=hunter2",
    "http://admin:hunter2@127.0.0.1:1/?u=admin&p=hunter2",
]

INFLUX_URL_KEYS = [
    f.name
    for f in dataclasses.fields(InfluxConfig)
    if typing.get_type_hints(InfluxConfig)[f.name] is HttpUrl
]


def influx_config(key: str, url: str, api: str) -> InfluxConfig:
    # Constructed directly: the configuration itself would refuse these URLs.
    config = Config().influx
    if api == "v2":
        config = dataclasses.replace(config, api="v2", org="o", bucket="b", token=Secret("t"))
    return dataclasses.replace(config, timeout=2.0, **{key: url})


def failure(call: Callable[[], object]) -> BaseException:
    with pytest.raises((ValueError, VibewatchError)) as caught:
        call()
    return caught.value


def shown(error: BaseException) -> str:
    """Everything a log of the error would print: its text and that of its causes."""
    texts = []
    current: BaseException | None = error
    while current is not None:
        texts.append(f"{current!s} {current!r}")
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return "\n".join(texts)


def test_the_influx_section_has_url_keys() -> None:
    assert "url" in INFLUX_URL_KEYS


@pytest.mark.parametrize("key", INFLUX_URL_KEYS)
@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("api", ["v1", "v2"])
def test_writer_errors_mask_the_url(key: str, url: str, api: str) -> None:
    config = influx_config(key, url, api)

    def write() -> None:
        writer = make_writer(config)
        try:
            writer.write(b"m f=1i 1\n")
        finally:
            writer.close()

    text = shown(failure(write))
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize("key", INFLUX_URL_KEYS)
@pytest.mark.parametrize("url", BAD_URLS)
def test_query_errors_mask_the_url(key: str, url: str) -> None:
    config = influx_config(key, url, "v1")

    error = failure(lambda: InfluxQL.from_config(config).query("SHOW DATABASES"))

    text = shown(error)
    for secret in SECRETS:
        assert secret not in text


def test_a_refused_url_is_shown_masked() -> None:
    url = "ftp://admin:hunter2@db/?u=admin&p=hunter2"

    error = failure(lambda: InfluxQL(url=url, database="d"))

    assert str(error) == (
        "InfluxDB url 'ftp://admin:********@db/?u=admin&p=********' must be http(s)://host[:port]"
    )


def test_a_foreign_error_quoting_the_url_is_masked_and_not_chained() -> None:
    # urllib3 quotes the URL it cannot parse; the v2 writer passes its message on.
    config = influx_config("url", "http://admin:hunter2@127.0.0.1:99999/", "v2")

    error = failure(lambda: make_writer(config).write(b"m f=1i 1\n"))

    assert "http://admin:********@127.0.0.1:99999/" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__


def test_a_foreign_error_without_credentials_stays_chained() -> None:
    error = failure(lambda: InfluxQL(url="http://127.0.0.1:1", database="d").query("SHOW X"))

    assert isinstance(error, QueryError)
    assert isinstance(error.__cause__, OSError)
