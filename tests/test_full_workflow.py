"""The Full model through the CLI on TimGM6mb renders: train from parts, eval, multi-track transcription,
bad input, and the 2020 polyamp-runner command lines (FULL train/eval/predict, MELODIC eval --load_full=True)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
pytestmark = pytest.mark.skipif(not SOUNDFONT.exists(), reason="needs Debian's timgm6mb-soundfont (CI installs it)")
TIMEOUT_S = 600


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


def assert_clean_failure(result: subprocess.CompletedProcess, exit_code: int, *needles: str) -> None:
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two rendered pieces (piano, bass, flute): about 4 s and 30 s, plus 4 NSynth-style notes."""
    from polyamp.synth.arrange import ArrangeOptions
    from polyamp.synth.pipeline import synthesize_dataset

    midi_dir = tmp_path_factory.mktemp("midi")
    rng = np.random.default_rng(0)
    for index, steps in ((0, 10), (1, 75)):
        midi = pretty_midi.PrettyMIDI()
        for program, low in ((0, 55), (33, 36), (73, 72)):
            instrument = pretty_midi.Instrument(program=program)
            for step in range(steps):
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
        nsynth_notes=4,
        arrange_options=ArrangeOptions(program_strategy="keep"),
        pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )
    return output


def _tracks_by_length(rendered: Path) -> list[Path]:
    """Track folders, shortest mix first."""
    tracks = sorted((rendered / "train").glob("Track*"))
    return sorted(tracks, key=lambda track: soundfile.info(str(track / "mix.flac")).duration)


@pytest.fixture(scope="module")
def models(rendered: Path, tmp_path_factory: pytest.TempPathFactory, polyamp_command: list[str]) -> Path:
    """melodic/p and timbre/p trained separately (tiny, 3 steps), then full/j started from them (3 steps)."""
    model_dir = tmp_path_factory.mktemp("models")
    common = ["--examples-path", str(rendered), "--model-dir", str(model_dir), "--num-steps", "3"]
    for part in ("melodic", "timbre"):
        result = run(
            [*polyamp_command, "train", "--model-type", part, *common, "--model-id", "p"]
            + [
                "--gin-file",
                f"{part}/tiny.gin",
            ]
        )
        assert result.returncode == 0, result.stderr[-2000:]
    full = run(
        [*polyamp_command, "train", "--model-type", "full", *common, "--model-id", "j", "--load-id", "p"]
        + ["--gin-file", "full/tiny.gin"]
    )
    assert full.returncode == 0, full.stderr[-2000:]
    assert "started from" in full.stdout and "melodic part" in full.stdout and "timbre part" in full.stdout
    return model_dir


def test_full_training_from_parts_writes_a_full_checkpoint(models: Path) -> None:
    import tensorflow as tf

    run_dir = models / "full" / "j"
    assert (run_dir / "ckpt-3.index").is_file() and (run_dir / "operative_config-3.gin").is_file()
    # A training checkpoint stores each variable once, under its first path (often the optimizer's),
    # so look at the object graph: the model's children are the two parts.
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(str(run_dir / "ckpt-3"))
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
        reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH")
    )
    model = graph.nodes[next(child.node_id for child in graph.nodes[0].children if child.local_name == "model")]
    assert {child.local_name for child in model.children} == {"melodic", "timbre"}
    config = (run_dir / "operative_config-3.gin").read_text()
    assert "FullHParams.full_learning_rate" in config and "MelodicHParams.fc_size = 16" in config


def test_eval_full_writes_agnostic_and_multi_instrument_metrics(
    rendered: Path, models: Path, tmp_path: Path, polyamp_command: list[str]
) -> None:
    report = tmp_path / "full.json"
    result = run(
        [*polyamp_command, "eval", "--model-type", "full", "--examples-path", str(rendered), "--model-dir", str(models)]
        + ["--load-id", "j", "--split", "train", "--eval-num-steps", "1", "--output-json", str(report)]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Multi-instrument note" in result.stdout and "per family" in result.stdout
    metrics = json.loads(report.read_text())
    assert metrics["num_examples"] == 1 and metrics["checkpoint"].endswith("full/j/ckpt-3")
    assert 0.0 <= metrics["average"]["note_f1"] <= 1.0
    pooled = metrics["multi_instrument"]["pooled"]
    for key in ("multi_note_f1", "multi_note_with_offsets_f1", "num_reference_notes"):
        assert key in pooled
    assert pooled["num_reference_instruments"] >= 3
    assert {"keyboard", "bass", "flute"} <= set(metrics["multi_instrument"]["per_family"])
    assert "multi_note_f1" in metrics["per_example"][0]


def test_transcribe_full_writes_one_named_track_per_family(
    rendered: Path, models: Path, tmp_path: Path, polyamp_command: list[str]
) -> None:
    from polyamp.full_transcription import load_full_transcriber
    from polyamp.notes.families import DEFAULT_PROGRAMS, FAMILY_NAMES

    mix = _tracks_by_length(rendered)[-1] / "mix.flac"
    assert soundfile.info(str(mix)).duration >= 30.0
    base = [*polyamp_command, "transcribe", str(mix), "--model-type", "full", "--model-dir", str(models)]
    base += ["--load-id", "j", "--output-dir", str(tmp_path)]
    result = run([*base, "--transcribed-file-suffix", "-polyamp-multi-track"])
    assert result.returncode == 0, result.stderr[-2000:]
    written = pretty_midi.PrettyMIDI(str(tmp_path / "mix-polyamp-multi-track.mid"))
    reported = load_full_transcriber(models, "j").transcribe_file(mix)
    assert written.instruments, "a 30 s mix gave no notes"
    assert [track.name for track in written.instruments] == [
        FAMILY_NAMES[family] for family in reported.notes_by_family
    ]
    for track in written.instruments:
        assert track.program == DEFAULT_PROGRAMS[FAMILY_NAMES.index(track.name)] and not track.is_drum
        assert len(track.notes) == len(reported.notes_by_family[FAMILY_NAMES.index(track.name)])

    chosen = run([*base, "--transcribed-file-suffix", "-sb", "--families", "string,brass"])
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    restricted = pretty_midi.PrettyMIDI(str(tmp_path / "mix-sb.mid"))
    assert restricted.instruments and {track.name for track in restricted.instruments} <= {"string", "brass"}

    single = run(
        [*polyamp_command, "transcribe", str(mix), "--model-type", "melodic", "--model-dir", str(models)]
        + ["--load-id", "j", "--load-full", "true", "--output-dir", str(tmp_path), "--transcribed-file-suffix", "-one"]
    )
    assert single.returncode == 0, single.stderr[-2000:]
    assert len(pretty_midi.PrettyMIDI(str(tmp_path / "mix-one.mid")).instruments) == 1


def test_bad_input_gives_one_line(rendered: Path, models: Path, tmp_path: Path, polyamp_command: list[str]) -> None:
    mix = _tracks_by_length(rendered)[0] / "mix.flac"
    where = ["--model-dir", str(models), "--output-dir", str(tmp_path)]
    kazoo = run([*polyamp_command, "transcribe", str(mix), "--model-type", "full", *where, "--families", "kazoo"])
    assert_clean_failure(kazoo, 3, "kazoo", "valid families")
    timbre = run(
        [
            *polyamp_command,
            "eval",
            "--model-type",
            "timbre",
            "--examples-path",
            str(rendered),
            "--model-dir",
            str(models),
        ]
        + ["--load-id", "j"]
    )
    assert_clean_failure(timbre, 4, "--load-full true")
    parts = run(
        [*polyamp_command, "transcribe", str(mix), "--model-type", "full", *where, "--load-id", "j"]
        + ["--no-load-full"]
    )
    assert_clean_failure(parts, 4, "no melodic checkpoint", "polyamp train --model-type melodic")


def test_runner_runs_the_2020_full_commands(rendered: Path, models: Path, tmp_path: Path) -> None:
    runner = str(Path(sys.executable).parent / "polyamp-runner")
    nsynth = next((rendered / "nsynth").glob("*.tfrecord*"))
    short = _tracks_by_length(rendered)[0]
    model_dir = f"--model_dir={models}"
    train = run(
        [runner, f"--examples_path={rendered}", f"--nsynth_examples_path={nsynth}", model_dir, "--model_type=FULL"]
        + ["--model_id=r", "--load_id=j", "--num_steps=2"]
    )
    assert train.returncode == 0, train.stderr[-2000:]
    assert (models / "full" / "r" / "ckpt-2.index").is_file() and "full model" in train.stdout
    assert "MixtureDataset.components" in (models / "full" / "r" / "operative_config-2.gin").read_text()
    evaluate = [runner, "--mode=eval", f"--examples_path={short}", model_dir, "--model_id=x", "--load_id=r"]
    evaluate.append("--eval_num_steps=1")
    melodic = run([*evaluate, "--model_type=MELODIC", "--load_full=True"])
    assert melodic.returncode == 0, melodic.stderr[-2000:]
    assert json.loads((models / "full" / "r" / "eval" / "metrics-2.json").read_text())["num_examples"] == 1
    full = run([*evaluate, "--model_type=FULL"])
    assert full.returncode == 0, full.stderr[-2000:]
    assert "multi_instrument" in json.loads((models / "full" / "r" / "eval" / "full-metrics-2.json").read_text())
    audio = tmp_path / "song.flac"
    audio.write_bytes((short / "mix.flac").read_bytes())
    predict = run(
        [runner, "--mode=predict", f"--audio_filename={audio}", model_dir, "--model_type=FULL", "--load_id=r"]
        + ["--transcribed_file_suffix=-polyamp-multi-track"]
    )
    assert predict.returncode == 0, predict.stderr[-2000:]
    assert (tmp_path / "song-polyamp-multi-track.mid").is_file()
