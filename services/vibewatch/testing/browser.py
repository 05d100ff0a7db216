"""A page opened in headless Chromium, as a person opens it, for tests.

:func:`open_page` starts Debian's ``chromium`` (``scripts/setup`` installs it) with the
DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages separated by NUL
bytes on file descriptors 3 and 4, no network port), loads the page, waits for its
``load`` event, and returns what a reader's browser would show: every image with whether
it loaded and its natural size, and every console message, uncaught exception and
browser log entry (a resource that failed to load is one) raised meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BrowserError", "Image", "PageView", "chromium", "open_page"]

#: Chromium's name on Debian, and other names it goes by.
_NAMES = ("chromium", "chromium-browser", "google-chrome")


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or did not load the page in time."""


@dataclass(frozen=True)
class Image:
    """An ``<img>`` of the page.

    Attributes:
        src: Its resolved URL.
        loaded: Loading finished and the image decoded (``complete`` and a width).
        width: Natural width in pixels (0 when it did not load).
        height: Natural height in pixels.
    """

    src: str
    loaded: bool
    width: int
    height: int


@dataclass
class PageView:
    """What loading a page showed.

    Attributes:
        title: The document's title.
        images: Its images, in document order.
        errors: Console errors, uncaught exceptions and browser log errors, as text.
        messages: Every console message and log entry, errors included, as ``level: text``.
    """

    title: str = ""
    images: list[Image] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def chromium() -> str | None:
    """The path of Chromium's executable, or ``None`` when it is not installed."""
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class _Pipe:
    """The DevTools protocol over Chromium's pipe: one command at a time, events kept."""

    def __init__(self, to_browser: int, from_browser: int, timeout_s: float) -> None:
        self._out, self._in = to_browser, from_browser
        self._buffer = b""
        self._next = 0
        self._deadline = time.monotonic() + timeout_s
        self.events: list[dict[str, Any]] = []

    def _message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > self._deadline:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._in, 65536)
            if not chunk:
                raise BrowserError("chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events that arrive meanwhile are kept."""
        self._next += 1
        command: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        os.write(self._out, json.dumps(command).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self._next:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_event(self, method: str) -> dict[str, Any]:
        """The first event ``method`` (kept or new)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._message()
            self.events.append(message)
            if message.get("method") == method:
                return message


_IMAGES = (
    "JSON.stringify({title: document.title, images: Array.from(document.images).map("
    "i => [i.src, i.complete && i.naturalWidth > 0, i.naturalWidth, i.naturalHeight])})"
)


def _text(event: dict[str, Any]) -> tuple[str, str]:
    """``(level, text)`` of a console, exception or log event."""
    params = event.get("params", {})
    method = event.get("method")
    if method == "Runtime.consoleAPICalled":
        args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
        return params.get("type", "log"), args
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        thrown = details.get("exception", {}).get("description", details.get("text", ""))
        return "error", f"uncaught: {thrown}"
    entry = params.get("entry", {})
    return entry.get("level", "info"), f"{entry.get('text', '')} {entry.get('url', '')}".strip()


def open_page(page: Path, *, timeout_s: float = 60.0) -> PageView:
    """Load ``page`` (a local file) in headless Chromium and say what it showed.

    Raises:
        BrowserError: Chromium is not installed, did not start, or the page did not load
            within ``timeout_s``.
    """
    executable = chromium()
    if executable is None:
        raise BrowserError(f"no Chromium on PATH (looked for {', '.join(_NAMES)})")
    to_read, to_browser = os.pipe()
    from_browser, to_write = os.pipe()
    to_read, to_write = _above_4(to_read), _above_4(to_write)
    with tempfile.TemporaryDirectory(prefix="vibewatch-chromium-") as profile:
        command = [
            executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-extensions", "--remote-debugging-pipe",
            f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        # The pipe is file descriptors 3 (commands in) and 4 (answers out) of Chromium.
        shell = f'exec "$@" 3<&{to_read} 4>&{to_write} {to_read}<&- {to_write}>&-'
        process = subprocess.Popen(
            ["/bin/bash", "-c", shell, "bash", *command],
            pass_fds=(to_read, to_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_read)
        os.close(to_write)
        try:
            return _load(_Pipe(to_browser, from_browser, timeout_s), page)
        finally:
            os.close(to_browser)
            os.close(from_browser)
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _above_4(fd: int) -> int:
    """``fd`` moved to a number above 4, so that moving it to 3 or 4 in the child cannot
    close another end of the pipe."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


def _load(pipe: _Pipe, page: Path) -> PageView:
    target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
    session = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        pipe.call(f"{domain}.enable", session)
    pipe.events.clear()  # what about:blank said
    pipe.call("Page.navigate", session, url=page.resolve().as_uri())
    pipe.wait_event("Page.loadEventFired")
    answer = pipe.call("Runtime.evaluate", session, expression=_IMAGES, returnByValue=True)
    shown = json.loads(answer["result"]["value"])
    view = PageView(
        title=shown["title"],
        images=[Image(src, bool(ok), int(w), int(h)) for src, ok, w, h in shown["images"]],
    )
    for event in pipe.events:
        if event.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown",
                                   "Log.entryAdded"):  # fmt: skip
            level, text = _text(event)
            view.messages.append(f"{level}: {text}")
            if level == "error":
                view.errors.append(text)
    return view
