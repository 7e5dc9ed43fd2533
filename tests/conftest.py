"""Shared fixtures: small synthetic datasets made on the fly (harmonic tones from random NoteSequences)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_REPORT_FILE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or a plain run) makes the file that pytest-xdist workers report lines to."""
    if not hasattr(config, "workerinput"):
        import tempfile

        handle, name = tempfile.mkstemp(prefix="polyamp-test-report-", suffix=".txt")
        os.close(handle)
        config.stash[_REPORT_FILE] = Path(name)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # pytest-xdist: tell each worker where to report
    from reporting import REPORT_FILE_KEY

    node.workerinput[REPORT_FILE_KEY] = str(node.config.stash[_REPORT_FILE])


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """Prints the lines the workers reported (tests/reporting.py), then removes their file."""
    path = config.stash.get(_REPORT_FILE, None)
    if path is None or not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    path.unlink()
    if lines:
        terminalreporter.section("reports from the test workers")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def synthetic_tfrecord(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Magenta-style TFRecord of 6 clips of 4 s synthesised tones."""
    from polyamp.data.synthetic import write_synthetic_tfrecord

    path = tmp_path_factory.mktemp("tones") / "train.tfrecord-00000-of-00001"
    write_synthetic_tfrecord(path, num_examples=6, duration_s=4.0, seed=1)
    return path


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 3 WAV + same-stem MIDI pairs (4 s each)."""
    from polyamp.data.synthetic import write_synthetic_folder

    folder = tmp_path_factory.mktemp("tone_folder")
    write_synthetic_folder(folder, num_examples=3, duration_s=4.0, seed=2)
    return folder


@pytest.fixture(scope="session")
def polyamp_command() -> list[str]:
    """The installed ``polyamp`` console script (tests run against the installed package)."""
    script = Path(sys.executable).parent / "polyamp"
    if script.exists():
        return [str(script)]
    found = shutil.which("polyamp")
    if found is None:
        pytest.fail("the polyamp console script is not installed; run `make test`")
    return [found]


@pytest.fixture(scope="session")
def trained_model(
    tmp_path_factory: pytest.TempPathFactory, polyamp_command: list[str], synthetic_tfrecord: Path
) -> Path:
    """A model folder holding melodic/cli/ckpt-12: the tiny preset trained 12 steps through the CLI
    (decoding frame threshold 0.45). Shared by every test module that transcribes."""
    model_dir = tmp_path_factory.mktemp("models")
    command = polyamp_command + [
        "train",
        "--model-type",
        "melodic",
        "--examples-path",
        str(synthetic_tfrecord),
        "--model-dir",
        str(model_dir),
        "--model-id",
        "cli",
        "--gin-file",
        "melodic/tiny.gin",
        "--num-steps",
        "12",
        "--hparams",
        '{"predict_frame_threshold": 0.45}',
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert (model_dir / "melodic" / "cli" / "ckpt-12.index").is_file()
    # Not a terminal: plain progress lines (first step, then every minute, last step) instead of a live bar.
    assert re.search(r"^step 1/12 loss \d", result.stderr, re.M), result.stderr
    assert re.search(r"^step 12/12 loss \d.* steps/s$", result.stderr, re.M), result.stderr
    return model_dir


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 3 s WAV of synthesised tones (16 kHz) with its MIDI beside it."""
    from polyamp.data.synthetic import write_synthetic_folder

    folder = tmp_path_factory.mktemp("clip")
    write_synthetic_folder(folder, num_examples=1, duration_s=3.0, seed=9)
    return next(folder.glob("*.wav"))


LOW_THRESHOLDS = {"predict_onset_threshold": 0.05, "predict_frame_threshold": 0.05, "predict_offset_threshold": 0.0}
"""Decoding thresholds at which the briefly trained model finds notes in ``clip``."""


@pytest.fixture(scope="session")
def sensitive_model(trained_model: Path):
    """``trained_model`` restored in-process (a TranscriptionModel) with :data:`LOW_THRESHOLDS`."""
    import json

    import polyamp

    return polyamp.load_model(trained_model, "melodic", "cli", hparams=json.dumps(LOW_THRESHOLDS))
