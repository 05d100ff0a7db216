"""Training and evaluating on the real CWRU recordings, through the command line.

Trained on the healthy recording up to a split point and judged on the rest of it (from
0.1 s after the split) and on the three fault recordings, at every split point from 2.0 s
to 3.5 s, both on raw windows and on amplitude-normalised ones (each window divided by
its own RMS, so that the spectral shape has to carry the decision).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.cliutil import App
from vibewatch.edge import FeatureSpec, Model
from vibewatch.models.keys import generate_keypair, load_private_key, load_public_key
from vibewatch.models.package import verify_package
from vibewatch.train import sources
from vibewatch.train.gate import HeldOut, Scores
from vibewatch.train.job import TrainSettings, detector_scores, train

CWRU = Path(__file__).resolve().parents[1] / "data" / "cwru"
SPLITS_S = (2.0, 2.5, 3.0, 3.5)  # of the 5.08 s healthy recording
SPLIT_S = 3.0  # the split the other tests use
HEALTHY = f"{CWRU}/normal_0_97.mat@*_DE_time"
FAULTY = [
    f"{CWRU}/48k_Drive_End_IR007_0_109.mat@*_DE_time",
    f"{CWRU}/48k_Drive_End_B007_0_122.mat@*_DE_time",
    f"{CWRU}/48k_Drive_End_OR007at6_0_135.mat@*_DE_time",
]
COMMON = ["--sample-rate", "48000", "--hop", "256"]
WINDOW = FeatureSpec.default(48_000).window
#: Seconds of one window of the default spec, as the device layer runs them back to back.
WINDOW_S = WINDOW / 48_000


def run(home: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env={"VIBEWATCH_DATA_HOME": str(home)})
    return result


def repeated(flag: str, values: list[str]) -> list[str]:
    """``--flag A --flag B``: a list option takes one value per flag."""
    return [arg for value in values for arg in (flag, value)]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    assert run(home, "keys", "generate").exit_code == 0
    return home


Trained = tuple[Path, list[str], dict[str, Any]]
NORMALISE = {"raw": [], "rms": ["--normalise", "rms"]}


def trainer(home: Path) -> Callable[[float, str], Trained]:
    """Trains on ``[0, split)`` (``raw`` or ``rms`` windows) into ``home``'s registry,
    once for each."""
    done: dict[tuple[float, str], Trained] = {}

    def trained(split: float, normalise: str) -> Trained:
        if (split, normalise) not in done:
            options = NORMALISE[normalise]
            out = home / f"out-{split}-{normalise}"
            result = run(
                home,
                "train",
                "--recordings",
                f"{HEALTHY}:0-{split}",
                *repeated("--faulty", FAULTY),
                *COMMON,
                *options,
                "--out",
                str(out),
                "--json",
            )
            assert result.exit_code == 0, result.output
            done[(split, normalise)] = (out, options, json.loads(result.stdout))
        return done[(split, normalise)]

    return trained


@pytest.fixture(scope="module")
def train_at(tmp_path_factory: pytest.TempPathFactory) -> Callable[[float, str], Trained]:
    """A trainer with a home of its own (its models do not replace the other tests')."""
    home = tmp_path_factory.mktemp("splits")
    assert run(home, "keys", "generate").exit_code == 0
    return trainer(home)


@pytest.fixture(scope="module", params=list(NORMALISE))
def trained(request: pytest.FixtureRequest, home: Path) -> Trained:
    return trainer(home)(SPLIT_S, request.param)


@pytest.mark.parametrize("normalise", list(NORMALISE))
@pytest.mark.parametrize("split", SPLITS_S)
def test_at_every_split_few_false_alarms_and_every_fault_detected(
    train_at: Callable[[float, str], Trained], split: float, normalise: str
) -> None:
    out, options, _ = train_at(split, normalise)
    result = run(
        out.parent,  # the trainer's home
        "evaluate",
        "--model",
        str(out / "package"),
        "--healthy",
        f"{HEALTHY}:{split + 0.1}-",
        *repeated("--faulty", FAULTY),
        *COMMON,
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    # The package remembers the normalisation it was trained with.
    assert report["normalise"] == ("rms" if options else None)
    assert report["healthy_windows"] > 250
    assert report["far"] <= 0.02, report
    assert [f["path"] for f in report["files"]] == FAULTY
    for row in report["files"]:
        assert row["auc"] >= 0.99, row
        assert row["detected"] >= 0.95, row
        # the device layer pages once per fault recording, at its first K windows
        assert row["events"] == 1 and row["first_event_s"] <= 3 * WINDOW_S + 1e-9, row
    events = report["events"]
    assert (events["k"], events["n"], events["m"]) == (3, 5, 5)  # the firmware's
    assert events["false_events"] == 0, events  # the healthy rest of the recording: quiet
    assert events["healthy_seconds"] > 1.4  # [s + 0.1, 5.08): at least 1.48 s


def test_float_and_int8_auc_agree_on_held_out_data(
    trained: Trained,
) -> None:
    _, _, summary = trained
    assert set(summary["auc"]) == set(FAULTY)
    for name, value in summary["auc"].items():
        assert abs(value - summary["auc_float"][name]) <= 0.01


@pytest.mark.parametrize("normalise", [None, "rms"])
def test_float_and_int8_auc_agree_on_the_rest_of_the_recording(
    tmp_path: Path, normalise: Any
) -> None:
    options = {"sample_rate_hz": 48_000, "hop": 256, "normalise": normalise}
    data = sources.from_recordings([f"{HEALTHY}:0-{SPLIT_S}"], **options)
    key = tmp_path / "key"
    generate_keypair(key, tmp_path / "key.pub")
    trained = train(
        data, TrainSettings(), version=2, private_key=load_private_key(key), out_dir=tmp_path
    )
    test = HeldOut(
        sources.from_recordings([f"{HEALTHY}:{SPLIT_S}-"], spec=data.spec, **options).healthy,
        sources.faulty_recordings(FAULTY, data.spec, **options),
    )
    int8 = Scores.of(trained.engine, test).auc()
    floats = detector_scores(trained.detector, test).auc()
    for name in FAULTY:
        assert int8[name] >= 0.99
        assert abs(floats[name] - int8[name]) <= 0.01


def test_package_golden_vectors_reproduce_on_the_c_engine(home: Path, trained: Trained) -> None:
    out, _, summary = trained
    package = verify_package(out / "package", load_public_key(home / "keys/model-signing.pub"))
    engine = Model(package.vwm)
    engine.check_golden()
    golden = package.manifest["golden"]
    outputs, scores = engine.run(np.array([g["input"] for g in golden], dtype=np.int8))
    np.testing.assert_array_equal(outputs, [g["output"] for g in golden])
    np.testing.assert_array_equal(scores, np.array([g["score"] for g in golden], np.float32))
    assert package.manifest["threshold"] == summary["threshold"]
    sources = package.manifest["training_data"]["recordings"]
    # Recorded by file name, channel and range as given, size and SHA-256: not by a path.
    data = (CWRU / "normal_0_97.mat").read_bytes()
    assert [s["recording"] for s in sources] == [f"normal_0_97.mat@*_DE_time:0-{SPLIT_S}"]
    assert [(s["channel"], s["bytes"], s["sha256"]) for s in sources] == [
        ("X097_DE_time", len(data), hashlib.sha256(data).hexdigest())
    ]
    assert str(CWRU) not in json.dumps(package.manifest["training_data"])
    assert (out / "MODEL_CARD.md").is_file()


def test_registry_keeps_both_and_the_gate_compares_them(home: Path, trained: Trained) -> None:
    _, _, summary = trained
    assert summary["version"] >= 2
    listing = json.loads(run(home, "models", "list", "--json").stdout)
    mine = [e for e in listing if e["version"] == summary["version"]]
    assert mine and mine[0]["status"] == summary["status"]
    assert any(line.startswith("false alarms within target") for line in summary["gate"])
    if summary["version"] > 2:  # a champion existed: AUCs were compared on this data
        assert any(line.startswith("AUC on ") for line in summary["gate"])


def test_evaluate_refuses_a_tampered_package(home: Path, trained: Trained, tmp_path: Path) -> None:
    out, _, _ = trained
    copy = tmp_path / "package"
    copy.mkdir()
    for f in (out / "package").iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    blob = bytearray((copy / "model.vwm").read_bytes())
    blob[100] ^= 0x01
    (copy / "model.vwm").write_bytes(bytes(blob))
    result = run(home, "evaluate", "--model", str(copy), "--healthy", HEALTHY, *COMMON)
    assert result.exit_code == 2
    assert "model.vwm" in result.output and "sha256" in result.output


def test_evaluate_takes_the_device_settings_and_refuses_impossible_ones(
    home: Path, trained: Trained
) -> None:
    out, _, _ = trained
    args = ["evaluate", "--model", str(out / "package"), "--healthy", f"{HEALTHY}:4-", *COMMON]
    strict = run(home, *args, *repeated("--faulty", FAULTY[:1]), "--k", "5", "--json")
    assert strict.exit_code == 0, strict.output
    report = json.loads(strict.stdout)
    assert (report["events"]["k"], report["events"]["n"]) == (5, 5)
    assert report["files"][0]["first_event_s"] == pytest.approx(5 * WINDOW_S)
    impossible = run(home, *args, "--k", "6")
    assert impossible.exit_code == 2
    assert "--k 6 is more than --n 5: no anomaly could ever start" in impossible.output


def test_too_few_healthy_windows_are_refused_with_the_count(home: Path, tmp_path: Path) -> None:
    result = run(home, "train", "--recordings", f"{HEALTHY}:0-0.5", *COMMON, "--out", str(tmp_path))
    assert result.exit_code == 2
    windows = (24_000 - WINDOW) // 256 + 1  # 0.5 s at hop 256
    assert f"only {windows} healthy windows available; training needs at least 256" in result.output
    assert not (tmp_path / "package").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one data source"),
        (["--recordings", HEALTHY, "--generator", "500"], "give exactly one data source"),
        (["--start", "2026-01-01"], "needs both --start and --end"),
        (["--generator", "500", "--version", "3"], "--version is for --no-register"),
        (["--generator", "500", "--hidden", "8,x"], "--hidden '8,x' is not"),
    ],
)
def test_train_refuses_bad_arguments(
    home: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run(home, "train", *args, "--out", str(tmp_path))
    assert result.exit_code == 2
    assert message in result.output


def test_train_without_a_key_says_how_to_make_one(tmp_path: Path) -> None:
    result = run(tmp_path, "train", "--generator", "500", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "model-signing.key" in result.output
    assert "does not exist" in result.stderr
    assert "create a key pair with `vibewatch keys generate`" in result.stderr


def test_a_repeated_flag_gives_several_values_and_no_positional_is_swallowed(
    tmp_path: Path,
) -> None:
    models = Path(__file__).resolve().parents[2] / "models"
    rng = np.random.default_rng(0)
    names = []
    for name in ("ok", "a", "b"):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal(48_000))
        names.append(str(tmp_path / f"{name}.npy"))
    evaluate = [
        "evaluate",
        "--model",
        str(models / "factory"),
        "--public",
        str(models / "release-signing.pub"),
        "--sample-rate",
        "48000",
        "--healthy",
        names[0],
    ]
    result = run(tmp_path, *evaluate, *repeated("--faulty", names[1:]), "--json")
    assert result.exit_code == 0, result.output
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == names[1:]

    # Several values after one flag: the second is an argument of its own, not a value.
    result = run(tmp_path, *evaluate, "--faulty", names[1], names[2])
    assert result.exit_code == 2
    assert "Got unexpected extra argument" in result.output and "b.npy)" in result.output

    # A list option followed by a positional argument: each keeps its own.
    deploy = App(help="Deploy a model.")

    @deploy.command()
    def ota(
        devices: Annotated[list[str], typer.Option("--device")],
        model: Annotated[str, typer.Argument()],
    ) -> None:
        typer.echo(json.dumps({"devices": devices, "model": model}))

    given = CliRunner().invoke(deploy, ["--device", "d1", "--device", "d2", "MODEL"])
    assert json.loads(given.stdout) == {"devices": ["d1", "d2"], "model": "MODEL"}
    given = CliRunner().invoke(deploy, ["--device", "d1", "MODEL"])
    assert json.loads(given.stdout) == {"devices": ["d1"], "model": "MODEL"}


def test_a_dataset_file_trains_like_its_recordings(home: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "healthy.npz"
    imported = run(home, "dataset", "import", f"{HEALTHY}:0-{SPLIT_S}", *COMMON, "-o", str(dataset))
    assert imported.exit_code == 0, imported.output
    out = tmp_path / "out"
    args = ["--dataset", str(dataset), "--epochs", "3", "--no-register", "--version", "9"]
    result = run(home, "train", *args, "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["version"], summary["status"], summary["gate"]) == (9, "unregistered", [])
    manifest = json.loads((out / "package/manifest.json").read_text())
    data = manifest["training_data"]
    windows = (round(SPLIT_S * 48_000) - WINDOW) // 256 + 1
    content = dataset.read_bytes()
    assert (data["source"], data["windows"]) == ("dataset", windows)
    assert data["dataset"] == {
        "file": "healthy.npz",
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert data["recordings"][0]["recording"] == f"normal_0_97.mat@*_DE_time:0-{SPLIT_S}"
