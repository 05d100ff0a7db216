"""The model card: what a trained model is, how it was trained and how well it does.

Written next to the package as ``MODEL_CARD.md`` with three plots: ``scores.png`` (int8
score histograms of the held-out healthy windows and of each faulty set, with the
threshold), ``roc.png`` (ROC curve per faulty set) and ``loss.png`` (training and
validation loss per epoch). The same inputs give the same bytes: the PNGs carry no
time stamp or software version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vibewatch.plots import pyplot, save_figure
from vibewatch.train.gate import Scores
from vibewatch.train.metrics import roc
from vibewatch.train.tail import CONFIDENCE, TailEstimate

CARD = "MODEL_CARD.md"
PLOTS = ("scores.png", "roc.png", "loss.png")


def _margin(metrics: dict[str, Any], name: str) -> float:
    """The int8 AUC of faulty set ``name`` minus the best baseline's."""
    best = max(float(b["auc"][name]) for b in metrics["baselines"].values())
    return float(metrics["auc"][name]) - best


def _plot_scores(scores: Scores, path: Path, tail: TailEstimate | None) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    sets = {"held-out healthy": scores.healthy, **scores.faulty}
    every = np.concatenate([np.asarray(v, dtype=np.float64) for v in sets.values()])
    positive = every[every > 0]
    low = float(np.min(positive)) if positive.size else 1e-6
    bins = np.geomspace(low, max(float(np.max(every)), low * 10), 60)
    for name, values in sets.items():
        ax.hist(np.maximum(values, low), bins=bins, histtype="step", label=name, linewidth=1.5)
    ax.axvline(scores.threshold, color="black", linestyle="--", label="threshold")
    ax.set_xscale("log")
    ax.set_xlabel("int8 anomaly score")
    ax.set_ylabel("windows")
    ax.legend(fontsize="small", loc="upper left")
    if tail is not None and tail.method == "pot":
        # the fitted tail of the calibration scores: share of healthy windows above x
        right = ax.twinx()
        xs = np.geomspace(max(tail.u, low), max(bins[-1], tail.threshold * 2), 400)
        xs = xs[tail.survival(xs) >= tail.target / 100]
        right.plot(xs, tail.survival(xs), color="grey", linewidth=1.0, label="fitted tail")
        right.axhline(tail.target, color="grey", linestyle=":", linewidth=1.0, label="target")
        right.set_yscale("log")
        right.set_ylim(tail.target / 100, 1.0)  # from the tail's start to past the target
        right.set_ylabel("share of healthy windows above (fitted tail)")
        right.legend(fontsize="small", loc="center right")
    save_figure(fig, path)


def _plot_roc(scores: Scores, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, values in scores.faulty.items():
        fpr, tpr = roc(scores.healthy, values)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    if scores.faulty:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no faulty data", ha="center")
    save_figure(fig, path)


def _plot_loss(history: dict[str, list[float]], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        ax.plot(range(1, len(history[key]) + 1), history[key], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean squared error (normalised)")
    ax.legend()
    save_figure(fig, path)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _num(value: float) -> str:
    return f"{value:.4f}"


def write_card(
    out_dir: Path,
    manifest: dict[str, Any],
    scores: Scores,
    history: dict[str, list[float]],
    *,
    decision: Sequence[str] = (),
) -> Path:
    """Write ``MODEL_CARD.md`` and its plots into ``out_dir``; returns the card's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    m = manifest["metrics"]
    tail = TailEstimate(**m["tail"]) if "tail" in m else None
    _plot_scores(scores, out_dir / PLOTS[0], tail)
    _plot_roc(scores, out_dir / PLOTS[1])
    _plot_loss(history, out_dir / PLOTS[2])
    spec = manifest["feature_spec"]
    files = manifest["files"]
    faulty = sorted(m["auc"])
    base = m["baselines"]
    lines = [
        f"# Model card: {manifest['model_id']} v{manifest['version']}",
        "",
        "An int8 dense autoencoder trained on healthy vibration only; a window whose "
        "features it cannot reconstruct scores high, and a score above the threshold is "
        "an anomaly. Scores below are int8 scores of the C engine, as the devices compute "
        "them, on held-out data the model never trained or calibrated on.",
        "",
        "## Model",
        "",
        *_table(
            ("", ""),
            [
                ("layers", " → ".join(map(str, manifest["architecture"]["dims"]))),
                (
                    "feature spec",
                    f"`{spec['id']}`: {spec['sample_rate_hz']} Hz, "
                    f"{spec['window']}-sample windows, {len(spec['band_bins']) - 1} bands",
                ),
                (
                    "threshold",
                    f"{manifest['threshold']:.6g} "
                    f"(target false-alarm rate {manifest['false_alarm_target']:.2%})",
                ),
                (
                    "model.vwm",
                    f"{files['model.vwm']['bytes']} B, sha256 "
                    f"`{files['model.vwm']['sha256'][:16]}…`",
                ),
                ("model.tflite", f"{files['model.tflite']['bytes']} B"),
                ("device RAM", f"{manifest['device']['ram_bytes']} B engine working memory"),
            ],
        ),
        "",
        "## Training data",
        "",
        "```json",
        json.dumps(manifest["training_data"], indent=2, sort_keys=True),
        "```",
        "",
        f"{m['training']['fit_windows']} windows trained on, "
        f"{m['training']['calibration_windows']} calibrated the threshold, "
        f"{m['held_out_healthy_windows']} held out; {m['training']['epochs_run']} epochs.",
        "",
        *_tail_lines(tail),
        "## Results on held-out data",
        "",
        f"False-alarm rate at the threshold: **{_pct(m['far'])}** "
        f"(float model: {_pct(m['far_float'])}).",
        "",
        *_table(
            (
                "faulty set",
                "windows",
                "AUC int8",
                "AUC float",
                "detected",
                "PCA AUC",
                "PCA detected",
                "isolation forest AUC",
                "isolation forest detected",
                "AUC margin",
            ),
            [
                (
                    name,
                    m["faulty_windows"][name],
                    _num(m["auc"][name]),
                    _num(m["auc_float"][name]),
                    _pct(m["detected"][name]),
                    _num(base["pca"]["auc"][name]),
                    _pct(base["pca"]["detected"][name]),
                    _num(base["isolation_forest"]["auc"][name]),
                    _pct(base["isolation_forest"]["detected"][name]),
                    f"{round(_margin(m, name), 4) or 0.0:+.4f}",  # no -0.0000
                )
                for name in faulty
            ],
        ),
        "",
        "Detected: the share of a set's windows above each detector's own threshold, set "
        "for the same false-alarm target (PCA "
        f"{_pct(base['pca']['far'])}, isolation forest "
        f"{_pct(base['isolation_forest']['far'])} of the held-out healthy windows). AUC "
        "margin: the int8 AUC minus the best baseline's.",
        "",
        *([] if faulty else ["No faulty data was given: AUC and detection are not measured.", ""]),
        "![score histograms](scores.png)",
        "",
        "![ROC curves](roc.png)",
        "",
        "![training loss](loss.png)",
        "",
    ]
    if decision:
        lines += ["## Quality gate", "", *[f"- {reason}" for reason in decision], ""]
    path = out_dir / CARD
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _tail_lines(tail: TailEstimate | None) -> list[str]:
    """How the threshold was set, for the card."""
    if tail is None:
        return []
    if tail.method != "pot":
        return [
            f"Threshold: the empirical quantile of {tail.n} calibration scores: {tail.note}.",
            "",
        ]
    fit = f"Kolmogorov-Smirnov p = {tail.fit_p:.2f}" if tail.fit_p is not None else "not tested"
    return [
        f"Threshold: the score healthy windows exceed with probability {_pct(tail.target)}, "
        f"from a generalised Pareto fit to the {tail.excesses} highest of {tail.n} "
        f"calibration scores above {_num(tail.u)} (shape {tail.gamma:.3f}, taken as "
        f"{max(tail.gamma, 0.0):.3f}; scale {_num(tail.sigma)}, its upper "
        f"{CONFIDENCE:.0%} bound; {fit}). The score plot shows the fitted tail.",
        "",
    ]
