"""The 2.x/3.x writer, checked at the HTTP level against a local server.

No InfluxDB 2.x server installs here, so this server plays its write endpoint:
it checks the URL, org, bucket, precision, token header and gzip body, and can
answer with any status.
"""

import gzip
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from vibewatch.errors import RejectedWriteError, RetryableWriteError
from vibewatch.influx.writers import InfluxV2Writer
from vibewatch.testing.servers import free_port


@dataclass
class Recorder:
    requests: list[dict[str, object]] = field(default_factory=list)
    status: int = 204
    body: bytes = b""


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            url = urllib.parse.urlsplit(self.path)
            recorder.requests.append(
                {
                    "path": url.path,
                    "query": dict(urllib.parse.parse_qsl(url.query)),
                    "authorization": self.headers.get("Authorization"),
                    "encoding": self.headers.get("Content-Encoding"),
                    "body": gzip.decompress(raw)
                    if self.headers.get("Content-Encoding") == "gzip"
                    else raw,
                }
            )
            self.send_response(recorder.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(recorder.body)))
            self.end_headers()
            self.wfile.write(recorder.body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", recorder
    httpd.shutdown()
    httpd.server_close()


def make_writer(url: str, gzip_level: int | None = 1) -> InfluxV2Writer:
    return InfluxV2Writer(
        url=url, org="acme", bucket="vib/raw", token="s3cr3t", timeout=5, gzip_level=gzip_level
    )


def test_write_sends_org_bucket_precision_token_and_gzip(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    writer = make_writer(url)
    body = "reading,device=d1 score=0.5 1700000000000\nreading,device=d2 score=1.5 1700000000001\n"
    writer.write(body.encode())
    writer.close()
    (request,) = recorder.requests
    assert request["path"] == "/api/v2/write"
    assert request["query"] == {"org": "acme", "bucket": "vib/raw", "precision": "ns"}
    assert request["authorization"] == "Token s3cr3t"
    assert request["encoding"] == "gzip"
    assert request["body"] == body.encode()


def test_plain_body_without_gzip(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    writer = make_writer(url, gzip_level=None)
    writer.write(b"m x=1 1\n")
    writer.close()
    assert recorder.requests[0]["encoding"] is None
    assert recorder.requests[0]["body"] == b"m x=1 1\n"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, RejectedWriteError),
        (413, RejectedWriteError),
        (422, RejectedWriteError),
        (401, RetryableWriteError),
        (404, RetryableWriteError),
        (429, RetryableWriteError),
        (500, RetryableWriteError),
        (503, RetryableWriteError),
    ],
)
def test_status_codes_map_to_errors(
    server: tuple[str, Recorder], status: int, error: type[Exception]
) -> None:
    url, recorder = server
    recorder.status = status
    recorder.body = b'{"code":"invalid","message":"unable to parse line 1"}'
    writer = make_writer(url)
    with pytest.raises(error) as info:
        writer.write(b"m x=1 1\n")
    writer.close()
    assert getattr(info.value, "status", None) == status


def test_connection_refused_is_retryable() -> None:
    writer = make_writer(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableWriteError):
        writer.write(b"m x=1 1\n")
    writer.close()
