"""Every command that takes a file refuses a bad one with exit code 2 and one line on stderr.

The table below pairs a command line (``{name}`` stands for a file made by the ``files``
fixture) with what the message must say besides the file's path. Add a row for each new
command or option that reads a file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from vibewatch.cli import app
from vibewatch.edge.spec import DEFAULT_WINDOW

MODELS = Path(__file__).resolve().parents[2] / "models"
FACTORY = str(MODELS / "factory" / "package")
RELEASE_KEY = str(MODELS / "release-signing.pub")
RATE = ["--sample-rate", "48000"]

#: The bad files: name -> what a recording reader says of it.
BAD_RECORDINGS = {
    "empty.npy": "empty NPY file (0 bytes)",
    "missing.wav": "no such file",
    "folder": "no such file",
    "text.npy": "not an NPY file",
    "noise.wav": "cannot read as WAV",
    "noise.mat": "cannot read as a MATLAB file",
    "good.npy@7": "no channel '7' (channels: 0)",
    "none.npy": "array of shape (0,) holds no samples",
    "none3.npy": "array of shape (0, 3) holds no samples",
    "none.wav": "WAV data of shape (0,) holds no samples",
    "short.npy": f"fewer than one window of {DEFAULT_WINDOW}",
}
BAD_DATASETS = {
    "empty.npz": "empty dataset file (0 bytes)",
    "missing.npz": "no such file",
    "folder": "is a directory",
    "text.npy": "not an .npz archive",
    "good.npy": "not an .npz archive",
    "noise.mat": "not an .npz archive",
}
BAD_PACKAGES = {
    "missing-package": "does not exist",
    "good.npy": "is not a directory",
    "folder": "holds no model package",
}
BAD_KEYS = {
    "missing.pub": "does not exist",
    "empty.npy": "does not hold a PEM public key",
    "text.npy": "does not hold a PEM public key",
    "folder": "is not a regular file",
}
BAD_MODELS = {
    "missing.vwm": "cannot read the model",
    "folder": "Is a directory",
    "text.npy": "is not a model the devices can run: truncated",
}
BAD_PRIVATE_KEYS = {
    "missing.key": "does not exist",
    "folder": "is not a regular file",
    "text.key": "does not hold a PEM private key",
}

EVALUATE = ["evaluate", "--model", FACTORY, "--public", RELEASE_KEY, *RATE]
TRAIN_OUT = ["--out", "{out}"]


def _rows() -> Iterator[object]:
    for name, problem in BAD_RECORDINGS.items():
        bad = "{" + name + "}"
        yield pytest.param(
            ["dataset", "import", bad, *RATE, "-o", "{out}/d.npz"],
            name,
            problem,
            id=f"import-{name}",
        )
        yield pytest.param(
            [*EVALUATE, "--healthy", bad], name, problem, id=f"evaluate-healthy-{name}"
        )
        yield pytest.param(
            [*EVALUATE, "--healthy", "{good.npy}", "--faulty", bad],
            name,
            problem,
            id=f"evaluate-faulty-{name}",
        )
        yield pytest.param(
            ["train", "--recordings", bad, *RATE, *TRAIN_OUT],
            name,
            problem,
            id=f"train-recordings-{name}",
        )
        yield pytest.param(
            ["train", "--recordings", "{good.npy}", "--faulty", bad, *RATE, *TRAIN_OUT],
            name,
            problem,
            id=f"train-faulty-{name}",
        )
    for name, problem in BAD_DATASETS.items():
        bad = "{" + name + "}"
        yield pytest.param(
            ["train", "--dataset", bad, *TRAIN_OUT], name, problem, id=f"train-dataset-{name}"
        )
    for name, problem in BAD_PACKAGES.items():
        bad = "{" + name + "}"
        yield pytest.param(
            ["evaluate", "--model", bad, "--public", RELEASE_KEY, "--healthy", "{good.npy}"],
            name,
            problem,
            id=f"evaluate-model-{name}",
        )
        yield pytest.param(
            ["models", "verify", bad, "--public", RELEASE_KEY],
            name,
            problem,
            id=f"models-verify-{name}",
        )
    for name, problem in BAD_KEYS.items():
        bad = "{" + name + "}"
        yield pytest.param(
            ["evaluate", "--model", FACTORY, "--public", bad, "--healthy", "{good.npy}"],
            name,
            problem,
            id=f"evaluate-public-{name}",
        )
        yield pytest.param(
            ["models", "verify", FACTORY, "--public", bad],
            name,
            problem,
            id=f"verify-public-{name}",
        )
        yield pytest.param(
            ["keys", "export-c", "--public", bad], name, problem, id=f"keys-export-c-{name}"
        )
    for name, problem in BAD_MODELS.items():
        bad = "{" + name + "}"
        yield pytest.param(["sim", "--model", bad], name, problem, id=f"sim-model-{name}")
    for name, problem in BAD_KEYS.items():
        bad = "{" + name + "}"
        yield pytest.param(["sim", "--public", bad], name, problem, id=f"sim-public-{name}")
    yield pytest.param(
        ["sim", "--scenario", "{missing.toml}"],
        "missing.toml",
        "does not exist",
        id="sim-scenario-missing",
    )
    yield pytest.param(
        ["sim", "--scenario", "{text.npy}"], "text.npy", "invalid TOML", id="sim-scenario-text"
    )
    for name, problem in BAD_PRIVATE_KEYS.items():
        bad = "{" + name + "}"
        yield pytest.param(
            ["train", "--generator", "500", "--signing-key", bad, *TRAIN_OUT],
            name,
            problem,
            id=f"train-signing-key-{name}",
        )
    yield pytest.param(
        ["config", "show", "--config", "{missing.toml}"],
        "missing.toml",
        "does not exist",
        id="config-missing",
    )
    yield pytest.param(
        ["models", "export", "vibewatch-ae", "2", "--out", "{full}"],
        "full",
        "already exists and is not empty",
        id="models-export-full",
    )
    yield pytest.param(
        ["train", "--generator", "500", "--out", "{good.npy}"],
        "good.npy",
        "is a file, not a directory",
        id="train-out-file",
    )
    yield pytest.param(
        ["models", "export", "vibewatch-ae", "2", "--out", "{good.npy}"],
        "good.npy",
        "is a file",
        id="models-export-file",
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    env = {"VIBEWATCH_DATA_HOME": str(home)}
    assert CliRunner().invoke(app, ["keys", "generate"], env=env).exit_code == 0
    return home


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each file of the table by name, and ``out``: a directory for outputs."""
    where = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    np.save(where / "good.npy", rng.standard_normal(48_000 * 2))
    np.save(where / "short.npy", rng.standard_normal(500))
    np.save(where / "none.npy", np.zeros(0))
    np.save(where / "none3.npy", np.zeros((0, 3)))
    wavfile.write(where / "none.wav", 48_000, np.zeros(0, np.int16))
    (where / "empty.npy").write_bytes(b"")
    (where / "empty.npz").write_bytes(b"")
    (where / "text.npy").write_text("0.1, 0.2, 0.3\n")
    (where / "text.key").write_text("not a key\n")
    (where / "text.key").chmod(0o600)
    (where / "noise.wav").write_bytes(rng.bytes(4000))
    (where / "noise.mat").write_bytes(rng.bytes(4000))
    (where / "folder").mkdir()
    (where / "full").mkdir()
    (where / "full" / "file").write_text("x")
    (where / "out").mkdir()
    names = {path.name: str(path) for path in where.iterdir()}
    for missing in ("missing.wav", "missing.npz", "missing-package", "missing.pub"):
        names[missing] = str(where / missing)
    names["missing.key"] = str(where / "missing.key")
    names["missing.toml"] = str(where / "missing.toml")
    names["missing.vwm"] = str(where / "missing.vwm")
    names["good.npy@7"] = f"{where / 'good.npy'}@7"
    return names


def _path_of(name: str, files: dict[str, str]) -> str:
    """The path a message names for table entry ``name`` (a channel is not part of it)."""
    return files[name].split("@")[0]


@pytest.mark.parametrize(("args", "name", "problem"), list(_rows()))
def test_bad_input_exits_2_with_one_line_naming_file_and_problem(
    home: Path, files: dict[str, str], args: list[str], name: str, problem: str
) -> None:
    argv = [re.sub(r"\{([^}]+)\}", lambda m: files[m[1]], arg) for arg in args]
    result = CliRunner().invoke(app, argv, env={"VIBEWATCH_DATA_HOME": str(home)})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert _path_of(name, files) in lines[0]
    assert problem in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["none.npy", "none3.npy", "none.wav", "noise.wav"])
def test_the_real_entry_point_prints_no_traceback(files: dict[str, str], name: str) -> None:
    out = Path(files["out"]) / "d.npz"
    command = ["dataset", "import", files[name], *RATE, "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "vibewatch", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {files[name]}: ")
    assert BAD_RECORDINGS[name] in line


def test_a_dataset_that_cannot_be_written_is_a_failure(files: dict[str, str]) -> None:
    out = Path(files["good.npy"]) / "d.npz"  # below a file
    result = CliRunner().invoke(
        app, ["dataset", "import", files["good.npy"], *RATE, "--out", str(out)]
    )
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: cannot write dataset {out}: ")
    assert "Not a directory" in line


def test_an_os_error_in_a_command_is_a_failure_naming_the_file() -> None:
    from vibewatch.cliutil import App, exits

    tool = App(help="A tool.")

    @tool.command()
    def write() -> None:
        with exits():
            raise FileNotFoundError(2, "No such file or directory", "/nowhere/card.md")

    @tool.command()
    def other() -> None:  # with one command, typer would make it the tool itself
        pass

    result = CliRunner().invoke(tool, ["write"])
    assert result.exit_code == 1
    assert result.stderr == "error: /nowhere/card.md: No such file or directory\n"
