"""``vibewatch dataset``: feature datasets from vibration recordings."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vibewatch.cliutil import App, JsonOption, exits, fail
from vibewatch.errors import DataError

dataset_app = App(help="Feature datasets from vibration recordings.")


class NormaliseChoice(StrEnum):
    """Amplitude normalisations offered by ``--normalise``."""

    RMS = "rms"


HopOption = Annotated[
    int | None,
    typer.Option(
        "--hop",
        min=1,
        help="Samples from one window's start to the next \\[default: an eighth of a window].",
        show_default=False,
    ),
]
NormaliseOption = Annotated[
    NormaliseChoice | None,
    typer.Option(
        "--normalise",
        help="rms: divide each window by the RMS of its mean-removed samples, so only the "
        "spectral shape remains (a constant window is then refused).",
        show_default=False,
    ),
]


@dataset_app.callback()
def dataset() -> None:
    """Feature datasets from vibration recordings (CSV, NPY, WAV, MATLAB .mat)."""


@dataset_app.command("import")
def import_(
    recordings: Annotated[
        list[str],
        typer.Argument(
            metavar="REC...",
            help="Recordings as PATH\\[@CHANNEL]\\[:START_S-END_S], e.g. "
            "normal_0_97.mat@X097_DE_time:0-3.0. PATH is the longest prefix naming an existing "
            "file. CHANNEL may be a glob (@*_DE_time): every channel it matches is read as a "
            "series of its own. A file with one channel needs no CHANNEL. The range is in "
            "seconds; either end may be left out (:1.5- runs to the end).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Dataset file to write (.npz).", show_default=False),
    ],
    sample_rate: Annotated[
        int | None,
        typer.Option(
            "--sample-rate",
            min=1,
            help="Sample rate in Hz of files that carry none (NPY; CSV without a time "
            "column; .mat without an fs variable). A file whose own rate differs is refused.",
            show_default=False,
        ),
    ] = None,
    hop: HopOption = None,
    normalise: NormaliseOption = None,
    as_json: JsonOption = False,
) -> None:
    r"""Turn recordings into feature vectors with the devices' own DSP and save them.

    Each channel is cut into windows of the feature spec's length (the default spec for
    the recordings' sample rate; all must share it), and every window becomes one feature
    vector. Reads CSV (header of channel names, optional t/time/time_s column giving the
    sample rate), NPY (\[samples] or \[samples, channels]), WAV and MATLAB .mat files.
    Prints one row per channel read and the spec id.
    """
    from vibewatch.train.dataset import import_recordings  # imported here: keeps --help fast

    # A progress bar only for a person watching: piped stderr keeps one line per error.
    shown = sys.stderr.isatty()
    with (
        exits(),
        typer.progressbar(
            length=len(recordings),
            label="Reading recordings",
            file=sys.stderr if shown else io.StringIO(),
        ) as bar,
    ):
        dataset = import_recordings(
            recordings,
            sample_rate_hz=sample_rate,
            hop=hop,
            normalise="rms" if normalise is NormaliseChoice.RMS else None,
            progress=lambda _ref: bar.update(1),
        )
    try:
        dataset.save(out)
    except DataError as exc:
        # The recordings were fine: the file could not be written.
        fail(str(exc), 1)
    spec = dataset.spec
    if as_json:
        summary = {
            "out": str(out),
            "spec": spec.spec_id,
            "n_features": spec.n_features,
            "windows": len(dataset.features),
            "sources": [asdict(s) for s in dataset.sources],
        }
        typer.echo(json.dumps(summary))
        return
    rows = [("recording", "channel", "sample rate", "windows")]
    rows += [
        (s.recording, s.channel, f"{s.sample_rate_hz} Hz", str(s.windows)) for s in dataset.sources
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    typer.echo(
        f"{len(dataset.features)} feature vectors of {spec.n_features} features, spec "
        f"{spec.spec_id}, written to {out}"
    )
