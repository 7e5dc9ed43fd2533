"""Shared fixtures: small synthetic datasets made on the fly (harmonic tones from random NoteSequences)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
