"""The demo's report as a page to open in a browser: ``index.html`` and three PNG plots.

* ``scores.png``: the anomaly score over simulated time of the faulty devices, the devices
  that raised a false alarm and a few healthy ones, on a log scale, with the threshold in
  force (the model's, then the device's own after its calibration, then the new model's
  once the device installed it), the fault's onset, and a mark where each
  ``DeviceAnomaly`` alert of a verified webhook began;
* ``rollout.png``: the rollout's devices in each state over real seconds, with the start
  of each wave;
* ``versions.png``: the fleet's devices on each model version over simulated time: the
  factory model's, then the new one's from when each device reported it active to the
  OTA controller.

Everything is read from InfluxDB, the webhook receiver and the rollout's timeline, as the
story's report is. The page has no script and links nothing outside its directory.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from vibewatch.config import Config
from vibewatch.demo.story import (
    CALIBRATE_WINDOWS,
    DemoReport,
    TimelinePoint,
    anomaly_alerts,
)
from vibewatch.influx import schema
from vibewatch.influx.query import InfluxQL, quote_identifier, quote_string
from vibewatch.plots import pyplot, save_figure
from vibewatch.testing.webhooks import Received

__all__ = ["HEALTHY_SHOWN", "PAGE", "PLOTS", "ReportData", "collect", "write_report"]

#: The page and the plots it shows, in its directory.
PAGE: Final = "index.html"
PLOTS: Final = ("scores.png", "rollout.png", "versions.png")
#: Healthy devices (without a false alarm) whose scores the page shows next to the others.
HEALTHY_SHOWN: Final = 2


@dataclass
class ReportData:
    """What the plots show, in simulated seconds since the start of the run.

    Attributes:
        scores: Per plotted device, its readings' ``(seconds, score)``.
        events: Per plotted device, the seconds its anomaly events started.
        alerts: Per device, the seconds its ``DeviceAnomaly`` alerts began (verified
            webhooks only).
        installed: Per device that reported the rollout's model active, when.
        timeline: The rollout as the demo saw it.
    """

    scores: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    events: dict[str, list[float]] = field(default_factory=dict)
    alerts: dict[str, list[float]] = field(default_factory=dict)
    installed: dict[str, float] = field(default_factory=dict)
    timeline: list[TimelinePoint] = field(default_factory=list)


def _shown(report: DemoReport) -> list[str]:
    """The devices whose scores are plotted: faulty, falsely alarmed, then a few healthy."""
    first = [fault.device for fault in report.faults] + list(report.false_alarm_devices)
    healthy = sorted(device for device in report.thresholds if device not in first)
    return list(dict.fromkeys(first)) + healthy[:HEALTHY_SHOWN]


def collect(
    config: Config,
    report: DemoReport,
    since_ms: int,
    requests: Iterable[Received],
    timeline: Sequence[TimelinePoint],
    installed: Mapping[str, float],
) -> ReportData:
    """Read what the plots need from InfluxDB (``config.influx``) and the webhooks; the
    rollout's ``timeline`` and when each device ``installed`` its model are the story's.

    Raises:
        QueryError: InfluxDB could not be queried.
    """
    data = ReportData(timeline=list(timeline), installed=dict(installed))
    shown = _shown(report)
    client = InfluxQL.from_config(config.influx)
    device = quote_identifier(schema.DEVICE)
    names = "|".join(shown) or "(?!)"
    # device ids are the demo's own (ID_PREFIX and digits): safe inside the regex
    chosen = f"time >= {since_ms}ms AND {device} =~ /^({names})$/"
    start = f"{quote_identifier(schema.KIND)} = {quote_string('start')}"
    score = quote_identifier(schema.SCORE)
    reading, anomaly = quote_identifier(schema.READING), quote_identifier(schema.ANOMALY)
    statements = (  # quoted names; the times and the ids are the demo's own
        f"SELECT {score} FROM {reading} WHERE {chosen} GROUP BY {device}; "  # noqa: S608
        f"SELECT {score} FROM {anomaly} WHERE {chosen} AND {start} GROUP BY {device}"
    )
    for series in client.query(statements):
        name = series.tags[schema.DEVICE]
        rows = [((int(row[0]) - since_ms) / 1000, float(row[1])) for row in series.values]
        if series.name == schema.READING:
            data.scores[name] = rows
        else:
            data.events[name] = [t for t, _ in rows]
    for request in requests:
        if request.verified:
            for name, starts_ms in _alert_starts(request.body):
                data.alerts.setdefault(name, []).append((starts_ms - since_ms) / 1000)
    return data


def _alert_starts(body: bytes) -> list[tuple[str, int]]:
    """``(device, startsAt in ms)`` of each ``DeviceAnomaly`` alert of a webhook body."""
    out = []
    for device, starts in anomaly_alerts(body):
        try:
            moment = datetime.fromisoformat(starts.replace("Z", "+00:00"))
        except ValueError:
            continue
        out.append((device, int(moment.timestamp() * 1000)))
    return out


def _threshold_steps(
    report: DemoReport, data: ReportData, device: str
) -> list[tuple[float, float]]:
    """``(from second, threshold)`` in force on ``device``: the model's, its calibrated
    one, the new model's once the device ran it."""
    steps = [(0.0, report.model_threshold)]
    if device in report.thresholds:
        steps.append((float(CALIBRATE_WINDOWS), report.thresholds[device]))
    if device in data.installed:
        steps.append((data.installed[device], float(report.training["threshold"])))
    return steps


def _plot_scores(report: DemoReport, data: ReportData, path: Path) -> None:
    plt = pyplot()
    from matplotlib import ticker

    shown = [name for name in _shown(report) if data.scores.get(name)]
    onsets = {fault.device: fault for fault in report.faults}
    columns = 2
    rows = max(1, math.ceil(len(shown) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(11, 2.6 * rows), squeeze=False)
    end = report.simulated_s
    for ax, name in zip(axes.flat, shown, strict=False):
        times, scores = zip(*data.scores[name], strict=True)
        ax.plot(times, [max(s, 1e-3) for s in scores], lw=0.7, color="tab:blue", label="score")
        steps = _threshold_steps(report, data, name)
        xs = [t for t, _ in steps] + [end]
        ys = [v for _, v in steps] + [steps[-1][1]]
        ax.step(xs, ys, where="post", color="tab:orange", lw=1.2, label="threshold")
        if name in onsets:
            ax.axvline(onsets[name].onset_s, color="grey", ls="--", lw=0.8, label="fault onset")
        for t in data.alerts.get(name, []):
            ax.plot([t], [max(ys)], marker="v", color="tab:red", ms=8, ls="none")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        kind = f" ({onsets[name].kind.replace('_', ' ')} fault)" if name in onsets else ""
        alarm = " (false alarm)" if name in report.false_alarm_devices else ""
        ax.set_title(f"{name}{kind}{alarm}", fontsize=9)
        ax.set_xlim(0, end)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    if shown:
        axes.flat[0].plot([], [], marker="v", color="tab:red", ls="none", label="alert")
        axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.supxlabel("simulated seconds", fontsize=9)
    fig.supylabel("anomaly score (log)", fontsize=9)
    save_figure(fig, path)


def _plot_rollout(data: ReportData, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.2))
    timeline = data.timeline
    if timeline:
        states = sorted({state for point in timeline for state in point.counts})
        times = [point.seconds for point in timeline]
        ax.stackplot(
            times,
            [[point.counts.get(state, 0) for point in timeline] for state in states],
            labels=states,
            step="post",
        )
        for before, point in itertools.pairwise(timeline):
            if point.wave != before.wave:
                ax.axvline(point.seconds, color="black", ls=":", lw=0.8)
                ax.annotate(
                    f"wave {point.wave}", (point.seconds, 0), fontsize=7, rotation=90, va="bottom"
                )
        ax.legend(fontsize=7, loc="upper left")
        ax.set_xlim(0, times[-1])
    else:
        ax.text(0.5, 0.5, "no rollout", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("seconds since the rollout started", fontsize=9)
    ax.set_ylabel("devices", fontsize=9)
    save_figure(fig, path)


def _plot_versions(report: DemoReport, data: ReportData, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 3.2))
    end = report.simulated_s
    moments = sorted({0.0, *data.installed.values(), end})
    new = [sum(t >= at for at in data.installed.values()) for t in moments]
    ax.step(moments, [report.devices - n for n in new], where="post", label="factory model")
    if data.installed:
        version = report.rollout["version"]
        ax.step(moments, new, where="post", label=f"version {version} (retrained)")
    ax.legend(fontsize=7, loc="center left")
    ax.set_xlim(0, end)
    ax.set_ylim(0, report.devices + 1)
    ax.set_xlabel("simulated seconds", fontsize=9)
    ax.set_ylabel("devices", fontsize=9)
    save_figure(fig, path)


def _page(report: DemoReport, captions: Mapping[str, str]) -> str:
    rows = "\n".join(
        f"<tr><th>{html.escape(what)}</th><td>{html.escape(value)}</td></tr>"
        for what, value in report.summary()
        if what != "report"
    )
    figures = "\n".join(
        f'<figure><img src="{name}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in captions.items()
    )
    verdict = "ok" if report.ok else "NOT ok: " + "; ".join(report.problems())
    story = html.escape("\n".join(report.story()))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vibewatch demo report</title>
<style>
body {{ font-family: sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ text-align: left; padding: 0.2em 1em; border-bottom: 1px solid #ddd; }}
img {{ max-width: 100%; }}
figure {{ margin: 2em 0; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style>
</head>
<body>
<h1>vibewatch demo report</h1>
<p><strong>{html.escape(verdict)}</strong></p>
<table>
{rows}
</table>
{figures}
<h2>The story</h2>
<pre>{story}</pre>
</body>
</html>
"""


def write_report(directory: Path, report: DemoReport, data: ReportData) -> Path:
    """Write the page and its plots into ``directory`` (made if missing; files of an
    earlier report are replaced) and return the page's absolute path.

    Raises:
        OSError: The directory or a file cannot be written.
    """
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    scores, rollout, versions = PLOTS
    _plot_scores(report, data, directory / scores)
    _plot_rollout(data, directory / rollout)
    _plot_versions(report, data, directory / versions)
    captions = {
        scores: "Anomaly score of the faulty devices and a few healthy ones, with the "
        "threshold in force, the fault's onset (dashed) and where each alert began (red).",
        rollout: "The rollout: devices in each state, wave by wave.",
        versions: "The fleet's devices on each model version.",
    }
    page = directory / PAGE
    page.write_text(_page(report, captions), encoding="utf-8")
    return page
