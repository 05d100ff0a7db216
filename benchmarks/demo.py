#!/usr/bin/env python3
"""How long `vibewatch demo` takes, whole and --quick, on this machine.

Runs the demo as a user does (``python -m vibewatch demo --json``, servers of its own,
the report in a temporary directory) and measures the wall time from the command's start
to its exit, that is with the servers started and stopped. The bars: the whole story in
at most 300 s, the quick one in at most 180 s, and each run ``ok`` (every fault detected
and alerted, no false alarm, nothing lost, the retrained model promoted and converged
on). Also checks that nothing it started is left listening.

    python3 benchmarks/demo.py [--only quick|full] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from outcome import finish, progress  # benchmarks/outcome.py, beside this script
from vibewatch.testing.servers import listening

#: The runs and their bars (seconds, wall time of the whole command).
RUNS = {"full": ((), 300.0), "quick": (("--quick",), 180.0)}


def run(name: str, args: Sequence[str]) -> dict[str, Any]:
    """One demo run: its wall time, its report, and the ports left listening."""
    progress(f"vibewatch demo {' '.join(args)}".rstrip())
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIBEWATCH_")}
    with tempfile.TemporaryDirectory(prefix=f"vibewatch-bench-demo-{name}-") as tmp:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "vibewatch", "demo", *args, "--json", "--report", tmp],
            capture_output=True,
            text=True,
            env=environ,
            timeout=900,
        )
        seconds = time.monotonic() - started
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = {}
    ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", done.stderr)}
    return {
        "seconds": round(seconds, 1),
        "exit": done.returncode,
        "ok": bool(report.get("ok")),
        "devices": report.get("devices"),
        "simulated_s": report.get("simulated_s"),
        "training_s": report.get("training", {}).get("seconds"),
        "rollout_s": report.get("rollout", {}).get("seconds"),
        "left_listening": sorted(p for p in ports if listening(p)),
        "stderr_tail": done.stderr.strip().splitlines()[-3:] if done.returncode else [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS), help="run only this one")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args(argv)
    names = [options.only] if options.only else list(RUNS)
    results = {name: run(name, RUNS[name][0]) for name in names}
    rows = ["run     devices  simulated s  train s  rollout s  wall s  bar s  ok"]
    bars = []
    for name, result in results.items():
        limit = RUNS[name][1]
        rows.append(
            f"{name:<7} {result['devices']!s:>7}  {result['simulated_s']!s:>11}  "
            f"{result['training_s']!s:>7}  {result['rollout_s']!s:>9}  {result['seconds']:>6}  "
            f"{limit:>5.0f}  {'yes' if result['ok'] else 'no'}"
        )
        bars.append(
            (f"{name} wall s", result["seconds"] <= limit, f"{result['seconds']} > {limit}")
        )
        bars.append((f"{name} ok", result["ok"], f"exit {result['exit']}: {result['stderr_tail']}"))
        bars.append(
            (f"{name} nothing left running", not result["left_listening"],
             f"listening: {result['left_listening']}")
        )  # fmt: skip
    return finish("\n".join(rows), results, bars, as_json=options.json)


if __name__ == "__main__":
    sys.exit(main())
