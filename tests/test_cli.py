"""The installed ``polyamp`` command, run in subprocesses: train, eval, transcribe, runner aliases, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

TIMEOUT_S = 300


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=cwd, env=env)


def assert_clean_failure(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Non-zero exit, one ``error:`` line on stderr naming what was wrong, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "In call to configurable" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_help_is_fast_and_lists_commands(polyamp_command, tmp_path) -> None:
    result = run(polyamp_command + ["--help"])
    assert result.returncode == 0
    for command in ("train", "eval", "transcribe", "prepare", "plugins"):
        assert command in result.stdout
    code = "import sys, polyamp.cli.main; print('tensorflow' in sys.modules)"
    probe = run([sys.executable, "-c", code], cwd=tmp_path)  # not the checkout: the installed package
    assert probe.stdout.strip() == "False", "importing the CLI must not import TensorFlow"


def test_plugins_lists_registries(polyamp_command) -> None:
    result = run(polyamp_command + ["plugins"])
    assert result.returncode == 0, result.stderr
    for name in ("cqt", "mel", "melodic", "tfrecord", "onsets_frames", "melodic/small.gin"):
        assert name in result.stdout


def test_eval_writes_metrics_json(polyamp_command, trained_model, synthetic_tfrecord, tmp_path) -> None:
    output = tmp_path / "metrics.json"
    result = run(
        polyamp_command
        + [
            "eval",
            "--model_type=MELODIC",
            "--examples_path",
            str(synthetic_tfrecord),
            "--model_dir",
            str(trained_model),
            "--load_id",
            "cli",
            "--eval_num_steps",
            "2",
            "--output-json",
            str(output),
        ]
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    assert report["num_examples"] == 2 and len(report["per_example"]) == 2
    for key in ("frame_f1", "note_f1", "note_with_offsets_f1", "note_with_offsets_and_velocity_f1"):
        assert 0.0 <= report["average"][key] <= 1.0
    assert "Note (onset)" in result.stdout
    again = run(
        polyamp_command
        + [
            "eval",
            "--examples-path",
            str(synthetic_tfrecord),
            "--model-dir",
            str(trained_model),
            "--eval-num-steps",
            "1",
            "--output-json",
            str(output),
        ]
    )
    assert_clean_failure(again, "metrics.json")


def test_transcribe_writes_midi_with_tempo_and_skips_existing_outputs(polyamp_command, trained_model, clip, tmp_path):
    import pretty_midi

    args = polyamp_command + [
        "transcribe",
        str(clip),
        "--model-dir",
        str(trained_model),
        "--load-id",
        "cli",
        "--output-dir",
        str(tmp_path),
        "--qpm",
        "90",
    ]
    result = run(args)
    assert result.returncode == 0, result.stderr
    midi_path = tmp_path / f"{clip.stem}.polyamp.mid"
    midi = pretty_midi.PrettyMIDI(str(midi_path))
    assert midi.get_tempo_changes()[1][0] == pytest.approx(90.0, abs=1e-3)  # stored as whole microseconds per beat
    # An existing output is never touched without --overwrite: the input is skipped (exit 0).
    midi_path.write_bytes(b"kept as it is")
    skipped = run(args)
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped" in skipped.stderr and "transcribed 0, skipped 1" in skipped.stdout
    assert midi_path.read_bytes() == b"kept as it is"
    redone = run(args + ["--overwrite"])
    assert redone.returncode == 0, redone.stderr
    assert pretty_midi.PrettyMIDI(str(midi_path)).get_tempo_changes()[1][0] == pytest.approx(90.0, abs=1e-3)


def test_runner_accepts_original_command_lines(trained_model, clip, tmp_path) -> None:
    runner = Path(sys.executable).parent / "polyamp-runner"
    target = tmp_path / clip.name
    target.write_bytes(clip.read_bytes())
    result = run(
        [
            str(runner),
            "--mode=predict",
            f"--audio_filename={target}",
            f"--model_dir={trained_model}",
            "--model_type=MELODIC",
            "--load_id=cli",
            "--transcribed_file_suffix=-polyamp-single-track",
            "--qpm=100",
        ]
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{clip.stem}-polyamp-single-track.mid").is_file()


def test_stereo_44k_input_is_downmixed_and_resampled(polyamp_command, trained_model, clip, tmp_path) -> None:
    samples, rate = soundfile.read(clip, dtype="float32")
    import scipy.signal

    resampled = scipy.signal.resample_poly(samples, 441, 160).astype(np.float32)
    stereo = np.stack([resampled, resampled], axis=1)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, stereo, 44100)
    result = run(polyamp_command + ["transcribe", str(path), "--model-dir", str(trained_model), "--load-id", "cli"])
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "stereo.polyamp.mid").is_file()


# ------------------------------------------------------------------------------------------------
# Bad input: one clear line, a non-zero exit, nothing damaged.


def _bad_audio_files(folder: Path) -> dict[str, Path]:
    files = {}
    files["corrupt"] = folder / "corrupt.wav"
    files["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(200))
    files["not_audio"] = folder / "notes.flac"
    files["not_audio"].write_text("this is a text file, not audio\n" * 20)
    files["empty"] = folder / "empty.wav"
    soundfile.write(files["empty"], np.zeros(0, np.float32), 16000)
    files["silent"] = folder / "silent.wav"
    soundfile.write(files["silent"], np.zeros(32000, np.float32), 16000)
    full = folder / "full.wav"
    soundfile.write(full, 0.5 * np.sin(np.linspace(0, 2000, 32000)).astype(np.float32), 16000, subtype="PCM_16")
    files["truncated"] = folder / "truncated.wav"
    files["truncated"].write_bytes(full.read_bytes()[:40])
    return files


@pytest.mark.parametrize("case", ["corrupt", "missing"])
def test_bad_audio_is_one_clear_error(polyamp_command, trained_model, tmp_path, case: str) -> None:
    files = _bad_audio_files(tmp_path)
    path = files.get(case, tmp_path / "missing.wav")
    result = run(polyamp_command + ["transcribe", str(path), "--model-dir", str(trained_model)])
    assert_clean_failure(result, path.name)
    assert not list(tmp_path.glob("*.mid"))


def test_every_kind_of_bad_audio_in_one_batch_is_named_with_its_reason(polyamp_command, trained_model, tmp_path):
    # One process for the other kinds (each process starts TensorFlow): the batch goes on past each
    # bad file, the failure table names every file with a one-line reason, and the exit code is 2.
    files = _bad_audio_files(tmp_path)
    kinds = {"not_audio": "", "empty": "", "silent": "silent", "truncated": ""}
    bad = [files[kind] for kind in kinds]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="400")  # one table row per line
    command = polyamp_command + ["transcribe", *map(str, bad), "--model-dir", str(trained_model)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert f"failed {len(bad)} of {len(bad)} file(s)" in result.stdout, result.stdout
    rows = {path.name: line for path in bad for line in result.stdout.splitlines() if path.name in line}
    assert set(rows) == {path.name for path in bad}, result.stdout
    for kind, reason in kinds.items():
        assert reason in rows[files[kind].name].lower(), rows[files[kind].name]
    assert not list(tmp_path.glob("*.mid"))


def test_unknown_hparam_and_bad_gin_binding(polyamp_command, trained_model, clip) -> None:
    base = polyamp_command + ["transcribe", str(clip), "--model-dir", str(trained_model)]
    assert_clean_failure(
        run(base + ["--hparams", '{"frame_prediction_threshold": 0.4}']),
        "frame_prediction_threshold",
        "predict_frame_threshold",
    )
    assert_clean_failure(run(base + ["--gin-param", "MelodicHParams.bogus = 1"]), "bogus")
    assert_clean_failure(run(base + ["--gin-file", "melodic/huge.gin"]), "melodic/huge.gin")


def test_missing_checkpoint(polyamp_command, trained_model, clip) -> None:
    result = run(polyamp_command + ["transcribe", str(clip), "--model-dir", str(trained_model), "--load-id", "nope"])
    assert_clean_failure(result, "nope")
    empty = run(polyamp_command + ["transcribe", str(clip), "--model-dir", str(trained_model / "nothing-here")])
    assert_clean_failure(empty, "no melodic checkpoint")


def test_malformed_tfrecord(polyamp_command, trained_model, tmp_path) -> None:
    bad = tmp_path / "bad.tfrecord"
    bad.write_bytes(os.urandom(500))
    for command in ("eval", "train"):
        result = run(
            polyamp_command
            + [
                command,
                "--examples-path",
                str(bad),
                "--model-dir",
                str(trained_model),
                "--gin-file",
                "melodic/tiny.gin",
            ]
        )
        assert_clean_failure(result, "bad.tfrecord")
    missing = run(
        polyamp_command
        + ["eval", "--examples-path", str(tmp_path / "none-*.tfrecord"), "--model-dir", str(trained_model)]
    )
    assert_clean_failure(missing, "none-*.tfrecord")


def test_unreadable_midi_in_prepare(polyamp_command, tmp_path, clip) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "piece.wav").write_bytes(clip.read_bytes())
    (source / "piece.mid").write_bytes(b"MThd this is not a MIDI file")
    result = run(polyamp_command + ["prepare", str(source), str(tmp_path / "out")])
    assert_clean_failure(result, "piece.mid")


def test_unknown_option_and_model_type(polyamp_command) -> None:
    result = run(polyamp_command + ["transcribe", "x.wav", "--model-type", "drums"])
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_resuming_with_a_different_architecture_is_refused(polyamp_command, trained_model, synthetic_tfrecord):
    before = sorted(path.name for path in (trained_model / "melodic" / "cli").iterdir())
    result = run(
        polyamp_command
        + [
            "train",
            "--examples-path",
            str(synthetic_tfrecord),
            "--model-dir",
            str(trained_model),
            "--model-id",
            "cli",
            "--num-steps",
            "20",
            "--hparams",
            '{"fc_size": 40}',
        ]
    )
    assert_clean_failure(result, "cannot resume")
    assert sorted(path.name for path in (trained_model / "melodic" / "cli").iterdir()) == before
