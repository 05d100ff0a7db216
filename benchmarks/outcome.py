"""What the benchmarks share: progress lines, and the end of a run (the table, the JSON
object, the bars missed and the exit status)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any


def progress(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def finish(
    text: str,
    values: Mapping[str, Any],
    bars: Iterable[tuple[str, bool, str]],
    *,
    as_json: bool,
) -> int:
    """Print the table (to stderr with ``as_json``, which prints ``values`` as one JSON
    object on stdout) and each missed bar; return 1 when a bar was missed, else 0.

    Args:
        text: The table.
        values: The results for ``--json``.
        bars: (name, met, detail) of every bar.
        as_json: Whether ``--json`` was given.
    """
    if as_json:
        print(text, file=sys.stderr)
        print(json.dumps(values))
    else:
        print(text)
    missed = [f"{name} ({detail})" for name, met, detail in bars if not met]
    for item in missed:
        print(f"bar missed: {item}", file=sys.stderr)
    return 1 if missed else 0
