"""Timbre model through the CLI: train on `polyamp synth` output, evaluate family metrics."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
pytestmark = pytest.mark.skipif(not SOUNDFONT.exists(), reason="needs Debian's timgm6mb-soundfont (CI installs it)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from polyamp.synth.arrange import ArrangeOptions
    from polyamp.synth.pipeline import synthesize_dataset

    midi_dir = tmp_path_factory.mktemp("midi")
    rng = np.random.default_rng(0)
    for index in range(2):
        midi = pretty_midi.PrettyMIDI()
        for program, low in ((0, 55), (33, 36), (73, 72)):
            instrument = pretty_midi.Instrument(program=program)
            for step in range(10):
                start = 0.2 + 0.4 * step
                instrument.notes.append(pretty_midi.Note(90, int(low + rng.integers(0, 12)), start, start + 0.35))
            midi.instruments.append(instrument)
        midi.write(str(midi_dir / f"piece{index}.mid"))
    output = tmp_path_factory.mktemp("synth") / "out"
    synthesize_dataset(
        output,
        SOUNDFONT,
        midi_dir=midi_dir,
        seed=1,
        validation_fraction=0.0,
        test_fraction=0.0,
        arrange_options=ArrangeOptions(program_strategy="keep"),
        pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )
    return output


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


def test_train_then_evaluate_timbre(rendered: Path, models: Path, tmp_path: Path, polyamp_command: list[str]) -> None:
    common = ["--examples-path", str(rendered), "--model-dir", str(models)]
    train = subprocess.run(
        [*polyamp_command, "train", "--model_type=TIMBRE", *common, "--model-id", "t", "--gin-file", "timbre/tiny.gin"]
        + ["--num-steps", "4"],
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert (models / "timbre" / "t" / "checkpoint").exists()
    report = tmp_path / "metrics.json"
    plot = tmp_path / "confusion.png"
    evaluate = subprocess.run(
        [*polyamp_command, "eval", "--model-type", "timbre", *common, "--load-id", "t", "--split", "train"]
        + ["--output-json", str(report), "--plot-confusion", str(plot)],
        capture_output=True,
        text=True,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert "family accuracy" in evaluate.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = subprocess.run(  # an existing plot is never replaced without --overwrite; checked before evaluating
        [*polyamp_command, "eval", "--model-type", "timbre", *common, "--load-id", "t", "--plot-confusion", str(plot)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 5 and "exists" in again.stderr and "Traceback" not in again.stderr
    timbre = json.loads(report.read_text())["timbre"]
    confusion = np.asarray(timbre["confusion"])
    assert confusion.shape == (12, 12)
    assert confusion.sum() == timbre["num_notes"] == 60  # 2 pieces x 3 parts x 10 notes, every note labelled
    assert 0.0 <= timbre["accuracy"] <= 1.0
    assert {"keyboard", "bass", "flute"} <= {name for name, row in timbre["per_family"].items() if row["support"]}


def test_timbre_only_transcription_splits_given_notes_into_family_tracks(
    rendered: Path, models: Path, tmp_path: Path, polyamp_command: list[str]
) -> None:
    track = rendered / "train" / "Track00001"
    command = [*polyamp_command, "transcribe", str(track / "mix.flac"), "--model-type", "timbre"]
    command += ["--notes", str(track / "all_src.mid"), "--model-dir", str(models), "--load-id", "t"]
    command += ["--output-dir", str(tmp_path), "--transcribed-file-suffix", "-polyamp-multi-track"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    written = pretty_midi.PrettyMIDI(str(tmp_path / "mix-polyamp-multi-track.mid"))
    from polyamp.notes.families import DEFAULT_PROGRAMS, FAMILY_NAMES

    assert written.instruments and sum(len(track.notes) for track in written.instruments) >= 30
    for instrument in written.instruments:
        assert instrument.name in FAMILY_NAMES
        assert instrument.program == DEFAULT_PROGRAMS[FAMILY_NAMES.index(instrument.name)]

    bad_family = subprocess.run(
        [*command[:-4], "--output-dir", str(tmp_path / "x"), "--families", "kazoo"], capture_output=True, text=True
    )
    assert bad_family.returncode == 3 and "kazoo" in bad_family.stderr and "Traceback" not in bad_family.stderr
    empty = tmp_path / "empty.mid"
    pretty_midi.PrettyMIDI().write(str(empty))
    no_notes = subprocess.run(
        [*command[:5], "--notes", str(empty), *command[7:-4], "--output-dir", str(tmp_path / "y")],
        capture_output=True,
        text=True,
    )
    assert no_notes.returncode == 2 and "no pitched notes" in no_notes.stderr
